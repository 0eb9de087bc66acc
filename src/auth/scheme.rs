//! Dovecot password schemes.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeError(pub String);

/// Verify `candidate` against a stored password field (`{SCHEME}...` or bare crypt form).
pub fn verify_password(_stored: &str, _candidate: &[u8]) -> Result<bool, SchemeError> {
    todo!("verify")
}

/// Hash `password` with `scheme` (e.g. `SHA512-CRYPT`), returning the `{SCHEME}hash` line part.
pub fn hash_password(_scheme: &str, _password: &[u8]) -> Result<String, SchemeError> {
    todo!("hash")
}
