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
    }
}

// The search index tables have no primary key; diesel's DSL wants one, so each names a
// column set it never relies on for uniqueness. Rows are only inserted and deleted by owner.
diesel::table! {
    search_token (resource_type, id, param, system, code) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        system -> Text,
        code -> Text,
        text -> Text,
    }
}

diesel::table! {
    search_string (resource_type, id, param, exact) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        norm -> Text,
        exact -> Text,
    }
}

diesel::table! {
    search_reference (resource_type, id, param, url) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        target_type -> Text,
        target_id -> Text,
        url -> Text,
    }
}

diesel::table! {
    search_date (resource_type, id, param, low, high) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        low -> Text,
        high -> Text,
    }
}

diesel::table! {
    search_uri (resource_type, id, param, uri) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        uri -> Text,
    }
}

diesel::table! {
    search_number (resource_type, id, param, code) {
        resource_type -> Text,
        id -> Text,
        param -> Text,
        value -> Double,
        system -> Text,
        code -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    resource_versions,
    resources,
    search_token,
    search_string,
    search_reference,
    search_date,
    search_uri,
    search_number
);

diesel::table! {
    bulk_import_checkpoints (name) {
        name -> Text,
        position -> Text,
        updated_at -> BigInt,
    }
}
