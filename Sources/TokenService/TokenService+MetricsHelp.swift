extension TokenService {
    /// The `# HELP` text of each metric family TokenService records (`ServiceMetrics`), by name:
    /// what each one measures.
    public static let metricsHelp = [
        "tokend_introspections_total":
            "Access token checks (introspection, /v1/verify, bearer-authenticated account routes), by result: active, inactive, or unavailable while the store is down.",
        "tokend_introspection_cache_total":
            "Lookups of checked access tokens in the verified-token cache, by outcome: hit or miss.",
        "tokend_revocations_total":
            "Revocations, by kind: access_token, refresh_family, subject (signed out everywhere) or key.",
        "tokend_refresh_reuse_detected_total":
            "Refresh tokens used again after they were spent; each such use ends its session.",
        "tokend_refresh_rotations_total": "Refresh tokens exchanged for a new access token and refresh token.",
        "tokend_tokens_issued_total":
            "Access tokens signed: admin issues, sign-ins, sign-ups and refresh rotations.",
        "tokend_keys": "Signing keys in the keyring, by state: next, current, previous, retired or revoked.",
    ]
}
