#ifndef TOKEND_COPENSSL_SHIM_H
#define TOKEND_COPENSSL_SHIM_H

// Only what Swift cannot reach directly: macros, variadic functions and
// string constants that are easier to pass as functions.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static inline void tokend_openssl_free(void *p) { OPENSSL_free(p); }

static inline long tokend_bio_mem_data(BIO *bio, char **out) { return BIO_get_mem_data(bio, out); }

static inline EVP_PKEY *tokend_ec_keygen(const char *curve) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static inline EVP_PKEY *tokend_rsa_keygen(size_t bits) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
}

static inline EVP_PKEY *tokend_ed25519_keygen(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

/// PKCS#8 PEM of a private key, unencrypted.
static inline int tokend_write_pkcs8_pem(BIO *bio, EVP_PKEY *key) {
    return PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
}

static inline const char *tokend_param_group_name(void) { return OSSL_PKEY_PARAM_GROUP_NAME; }
static inline const char *tokend_param_pub_key(void) { return OSSL_PKEY_PARAM_PUB_KEY; }
static inline const char *tokend_param_priv_key(void) { return OSSL_PKEY_PARAM_PRIV_KEY; }
static inline const char *tokend_param_ec_pub_x(void) { return OSSL_PKEY_PARAM_EC_PUB_X; }
static inline const char *tokend_param_ec_pub_y(void) { return OSSL_PKEY_PARAM_EC_PUB_Y; }
static inline const char *tokend_param_rsa_n(void) { return OSSL_PKEY_PARAM_RSA_N; }
static inline const char *tokend_param_rsa_e(void) { return OSSL_PKEY_PARAM_RSA_E; }
static inline const char *tokend_param_rsa_d(void) { return OSSL_PKEY_PARAM_RSA_D; }
static inline const char *tokend_param_rsa_p(void) { return OSSL_PKEY_PARAM_RSA_FACTOR1; }
static inline const char *tokend_param_rsa_q(void) { return OSSL_PKEY_PARAM_RSA_FACTOR2; }
static inline const char *tokend_param_rsa_dp(void) { return OSSL_PKEY_PARAM_RSA_EXPONENT1; }
static inline const char *tokend_param_rsa_dq(void) { return OSSL_PKEY_PARAM_RSA_EXPONENT2; }
static inline const char *tokend_param_rsa_qi(void) { return OSSL_PKEY_PARAM_RSA_COEFFICIENT1; }
static inline const char *tokend_param_mac_digest(void) { return OSSL_MAC_PARAM_DIGEST; }

/// Sets up an HMAC context keyed with `key` for `digest` ("SHA256").
static inline int tokend_hmac_init(EVP_MAC_CTX *ctx, const unsigned char *key, size_t keylen, const char *digest) {
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    return EVP_MAC_init(ctx, key, keylen, params);
}

static inline int tokend_selection_keypair(void) { return EVP_PKEY_KEYPAIR; }
static inline int tokend_selection_public(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int tokend_rsa_pkcs1_padding(void) { return RSA_PKCS1_PADDING; }
static inline int tokend_rsa_pss_padding(void) { return RSA_PKCS1_PSS_PADDING; }
static inline int tokend_rsa_pss_saltlen_digest(void) { return RSA_PSS_SALTLEN_DIGEST; }

/// A password callback that never prompts: an encrypted PEM fails to load instead of
/// blocking on the terminal.
static inline int tokend_no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1;
}
static inline EVP_PKEY *tokend_read_private_pem(BIO *bio) {
    return PEM_read_bio_PrivateKey(bio, NULL, tokend_no_password, NULL);
}
static inline EVP_PKEY *tokend_read_public_pem(BIO *bio) {
    return PEM_read_bio_PUBKEY(bio, NULL, tokend_no_password, NULL);
}
static inline X509 *tokend_read_certificate_pem(BIO *bio) {
    return PEM_read_bio_X509(bio, NULL, tokend_no_password, NULL);
}

/// A table of multiples of `group`'s generator (P-256: OpenSSL's nistz256 table, about
/// 150 KB), which EC_POINT_mul then uses for that generator. Deprecated in OpenSSL 3.0 with
/// the rest of the low-level EC API, still present in every 3.x; the deprecation is
/// silenced here, in the one place that calls it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline int tokend_ec_group_precompute_mult(EC_GROUP *group, BN_CTX *ctx) {
    return EC_GROUP_precompute_mult(group, ctx);
}

/// ECDSA with a nonce computed ahead (TokenCrypto's `ECDSANonces`), through the low-level
/// EC_KEY API that OpenSSL 3.0 deprecated but every 3.x keeps; silenced here like the above.
///
/// The EC_KEY of an EC key pair (a reference the caller frees with tokend_ec_key_free), or NULL.
static inline EC_KEY *tokend_ec_key(EVP_PKEY *key) { return EVP_PKEY_get1_EC_KEY(key); }
static inline void tokend_ec_key_free(EC_KEY *key) { EC_KEY_free(key); }

/// One nonce for `key`'s curve: k from OpenSSL's private DRBG, uniform in [1, n-1], then
/// *kinv = k^-1 mod n and *r = (k·G).x mod n, in constant time. 1 on success.
static inline int tokend_ecdsa_nonce(EC_KEY *key, BIGNUM **kinv, BIGNUM **r) {
    return ECDSA_sign_setup(key, NULL, kinv, r);
}

/// Signs the `length`-byte `digest` with `key` and the nonce (`kinv`, `r`), writing r‖s, each
/// `half` bytes big-endian, to `out` (JWS's form, RFC 7518 §3.4). 1 on success; 0 when
/// OpenSSL fails, also for s = 0 (it asks for another nonce then).
static inline int tokend_ecdsa_sign_with_nonce(
    EC_KEY *key, const unsigned char *digest, int length, const BIGNUM *kinv, const BIGNUM *r,
    unsigned char *out, int half
) {
    ECDSA_SIG *signature = ECDSA_do_sign_ex(digest, length, kinv, r, key);
    if (signature == NULL) return 0;
    const BIGNUM *sr = NULL, *ss = NULL;
    ECDSA_SIG_get0(signature, &sr, &ss);
    int ok = BN_bn2binpad(sr, out, half) == half && BN_bn2binpad(ss, out + half, half) == half;
    ECDSA_SIG_free(signature);
    return ok;
}
#pragma GCC diagnostic pop

#endif
