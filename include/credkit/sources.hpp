// credkit — umbrella header of the token sources: HTTP(S) token service, ACS identity, Web PubSub,
// Microsoft Entra client credentials, Agora AccessToken2. Each header can also be included alone.
#pragma once

#include <credkit/credkit.hpp>

#include <credkit/sources/acs_connection_string.hpp>
#include <credkit/sources/acs_identity_client.hpp>
#include <credkit/sources/acs_identity_client_options.hpp>
#include <credkit/sources/acs_token_scope.hpp>
#include <credkit/sources/acs_user_and_token.hpp>
#include <credkit/sources/agora_access_token.hpp>
#include <credkit/sources/agora_service.hpp>
#include <credkit/sources/agora_token_info.hpp>
#include <credkit/sources/entra_client_secret_options.hpp>
#include <credkit/sources/entra_client_secret_source.hpp>
#include <credkit/sources/http_client_options.hpp>
#include <credkit/sources/http_token_response.hpp>
#include <credkit/sources/http_token_source.hpp>
#include <credkit/sources/http_token_source_options.hpp>
#include <credkit/sources/webpubsub_client_access.hpp>
#include <credkit/sources/webpubsub_client_token_options.hpp>
#include <credkit/sources/webpubsub_client_type.hpp>
#include <credkit/sources/webpubsub_connection_string.hpp>
#include <credkit/sources/webpubsub_service_client.hpp>
#include <credkit/sources/webpubsub_token_api_client.hpp>
