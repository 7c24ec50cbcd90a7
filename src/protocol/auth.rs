//! Authenticated requests: an account proves it is making a request (cancel an offer,
//! refuse a deal, upload or download a result) by signing a [`Request`] naming the method,
//! the path and the sha256 of the body, with a nonce and a short expiry. The proof travels
//! in five `x-dcn-*` headers; [`AuthHeaders::verify`] turns it into a [`Verified`] request,
//! the only form the solver's state machine takes.

use super::{check_signer, sign_digest, ProtocolError, Verifier};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct};

sol! {
    /// "`account` asks for `method` `path` with the body whose sha256 is `body`", valid
    /// until `expiry`, once (`nonce`).
    #[derive(Debug, PartialEq, Eq)]
    struct Request {
        address account;
        string method;
        string path;
        bytes32 body;
        uint64 expiry;
        uint256 nonce;
    }
}

/// Header naming the account.
pub const ACCOUNT: &str = "x-dcn-account";
/// Header with the expiry, unix seconds.
pub const EXPIRY: &str = "x-dcn-expiry";
/// Header with the nonce, decimal or 0x-hex.
pub const NONCE: &str = "x-dcn-nonce";
/// Header with the body's sha256, 0x-hex ([`EMPTY_BODY`] for a request without one).
pub const BODY_SHA256: &str = "x-dcn-body-sha256";
/// Header with the 65-byte signature, 0x-hex.
pub const SIGNATURE: &str = "x-dcn-signature";

/// The sha256 of an empty body, which requests without one sign.
pub const EMPTY_BODY: B256 =
    alloy::primitives::b256!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

/// The sha256 of `body`, as a request signs it.
pub fn body_sha256(body: &[u8]) -> B256 {
    use sha2::Digest;
    B256::from_slice(&sha2::Sha256::digest(body))
}

/// The four header values of an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    /// The account making the request.
    pub account: Address,
    /// Unix seconds after which the proof is void.
    pub expiry: u64,
    /// Never reused by this account.
    pub nonce: U256,
    /// The sha256 of the body the account sends.
    pub body: B256,
    /// Signature over the [`Request`].
    pub signature: Bytes,
}

/// A request whose signature [`AuthHeaders::verify`] checked: `account` signed it, for this
/// method and path, and it has not expired. Its nonce may still have been used (the
/// solver's store knows), and its body must still hash to `body`.
// The private field, not `#[non_exhaustive]`: only `verify` (this module) makes one, not the
// rest of the crate either.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The account that signed.
    pub account: Address,
    /// Unix seconds after which the proof is void.
    pub expiry: u64,
    /// Never reused by this account.
    pub nonce: U256,
    /// The sha256 of the body it signed.
    pub body: B256,
    _checked: (),
}

impl AuthHeaders {
    /// Signs a request for `method` `path` with the body whose sha256 is `body`, valid until
    /// `expiry`, with a random nonce.
    pub async fn sign(
        signer: &PrivateKeySigner,
        method: &str,
        path: &str,
        body: B256,
        expiry: u64,
        domain: &Eip712Domain,
    ) -> Result<Self, alloy::signers::Error> {
        let nonce = U256::from_be_bytes(B256::random().0);
        let request =
            Request { account: signer.address(), method: method.into(), path: path.into(), body, expiry, nonce };
        let signature = sign_digest(signer, &request.eip712_signing_hash(domain)).await?;
        Ok(Self { account: signer.address(), expiry, nonce, body, signature })
    }

    /// Reads the headers; `None` if none of them is there, an error if some are wrong.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Result<Option<Self>, ProtocolError> {
        let get = |name: &'static str| -> Result<Option<&str>, ProtocolError> {
            headers.get(name).map(|v| v.to_str().map_err(|_| super::invalid(name, "not ASCII"))).transpose()
        };
        let (Some(account), expiry, nonce, body, signature) =
            (get(ACCOUNT)?, get(EXPIRY)?, get(NONCE)?, get(BODY_SHA256)?, get(SIGNATURE)?)
        else {
            return Ok(None);
        };
        let missing = |name: &'static str| super::invalid(name, "header missing");
        Ok(Some(Self {
            account: account.parse().map_err(|_| super::invalid(ACCOUNT, "not an address"))?,
            expiry: expiry
                .ok_or_else(|| missing(EXPIRY))?
                .parse()
                .map_err(|_| super::invalid(EXPIRY, "not a number"))?,
            nonce: nonce.ok_or_else(|| missing(NONCE))?.parse().map_err(|_| super::invalid(NONCE, "not a number"))?,
            body: body
                .ok_or_else(|| missing(BODY_SHA256))?
                .parse()
                .map_err(|_| super::invalid(BODY_SHA256, "not a 32-byte 0x-hex sha256"))?,
            signature: signature
                .ok_or_else(|| missing(SIGNATURE))?
                .parse()
                .map_err(|_| super::invalid(SIGNATURE, "not 0x-hex"))?,
        }))
    }

    /// The header pairs to send.
    pub fn to_pairs(&self) -> [(&'static str, String); 5] {
        [
            (ACCOUNT, self.account.to_string()),
            (EXPIRY, self.expiry.to_string()),
            (NONCE, self.nonce.to_string()),
            (BODY_SHA256, self.body.to_string()),
            (SIGNATURE, self.signature.to_string()),
        ]
    }

    /// Checks that the account signed this very request and that it is still valid.
    pub fn verify(&self, method: &str, path: &str, v: &Verifier) -> Result<Verified, ProtocolError> {
        let request = Request {
            account: self.account,
            method: method.into(),
            path: path.into(),
            body: self.body,
            expiry: self.expiry,
            nonce: self.nonce,
        };
        check_signer(&request.eip712_signing_hash(&v.domain), &self.signature, self.account)?;
        v.check_expiry(self.expiry)?;
        Ok(Verified { account: self.account, expiry: self.expiry, nonce: self.nonce, body: self.body, _checked: () })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn headers_round_trip_and_bind_method_path_and_body() {
        let signer = PrivateKeySigner::random();
        let v = Verifier {
            solver: Address::ZERO,
            domain: super::super::domain(1337, Address::repeat_byte(1)),
            now: 100,
            max_ahead: 300,
        };
        assert_eq!(body_sha256(b""), EMPTY_BODY);
        let body = body_sha256(b"{}");
        let auth = AuthHeaders::sign(&signer, "GET", "/api/v1/deals/0x01/result", body, 200, &v.domain).await.unwrap();
        let mut map = axum::http::HeaderMap::new();
        for (k, val) in auth.to_pairs() {
            map.insert(k, val.parse().unwrap());
        }
        let parsed = AuthHeaders::from_headers(&map).unwrap().unwrap();
        assert_eq!(parsed, auth);
        assert_eq!(parsed.verify("GET", "/api/v1/deals/0x01/result", &v).unwrap().body, body);
        let other_body = AuthHeaders { body: EMPTY_BODY, ..parsed.clone() };
        assert_eq!(other_body.verify("GET", "/api/v1/deals/0x01/result", &v).unwrap_err().code(), "wrong_signer");
        assert_eq!(parsed.verify("PUT", "/api/v1/deals/0x01/result", &v).unwrap_err().code(), "wrong_signer");
        assert_eq!(parsed.verify("GET", "/api/v1/deals/0x02/result", &v).unwrap_err().code(), "wrong_signer");
        assert!(AuthHeaders::from_headers(&axum::http::HeaderMap::new()).unwrap().is_none());
    }
}
