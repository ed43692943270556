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

// Each search parameter (resource type and code) has a small integer id; the index rows name
// their parameter by it (src/store/params.rs).
diesel::table! {
    search_params (param_id) {
        param_id -> Integer,
        resource_type -> Text,
        code -> Text,
    }
}

// The search index tables have no primary key; diesel's DSL wants one, so each names a
// column set it never relies on for uniqueness. Rows are only inserted and deleted by owner.
diesel::table! {
    search_token (param_id, id, system, code) {
        param_id -> Integer,
        id -> Text,
        system -> Text,
        code -> Text,
        text -> Text,
    }
}

diesel::table! {
    search_string (param_id, id, exact) {
        param_id -> Integer,
        id -> Text,
        norm -> Text,
        exact -> Text,
    }
}

diesel::table! {
    search_reference (param_id, id, url) {
        param_id -> Integer,
        id -> Text,
        target_type -> Text,
        target_id -> Text,
        url -> Text,
    }
}

diesel::table! {
    search_date (param_id, id, low, high) {
        param_id -> Integer,
        id -> Text,
        low -> Text,
        high -> Text,
    }
}

diesel::table! {
    search_uri (param_id, id, uri) {
        param_id -> Integer,
        id -> Text,
        uri -> Text,
    }
}

diesel::table! {
    search_number (param_id, id, code) {
        param_id -> Integer,
        id -> Text,
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
