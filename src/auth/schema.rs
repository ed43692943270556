//! The tables of the auth module (migrations `2026-11-24-000003_auth`), kept apart from the
//! resource schema in `crate::store::schema`: only this module reads or writes them.

diesel::table! {
    auth_clients (id) {
        id -> Text,
        name -> Text,
        scopes -> Text,
        key_algorithm -> Nullable<Text>,
        public_key_pem -> Nullable<Text>,
        jwks_url -> Nullable<Text>,
        created_at -> Text,
        revoked_at -> Nullable<Text>,
    }
}

diesel::table! {
    auth_assertions (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    auth_tokens (token_hash) {
        token_hash -> Text,
        client_id -> Text,
        scopes -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(auth_tokens -> auth_clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(auth_clients, auth_assertions, auth_tokens);
