//! The one schema both stores share (see migrations/sqlite and migrations/postgres).

diesel::table! {
    resource_versions (seq) {
        seq -> BigInt,
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> Text,
        method -> Text,
        deleted -> Bool,
        content -> Nullable<Text>,
    }
}

diesel::table! {
    resources (resource_type, id) {
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> Text,
        deleted -> Bool,
        content -> Nullable<Text>,
    }
}

diesel::table! {
    resource_tokens (resource_type, id, param, system, code) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        system -> Text,
        code -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(resource_versions, resources, resource_tokens);
