//! The claim checks, run before any key is fetched: `iss`, `aud` (exactly
//! one), `exp`/`iat`/`nbf` with skew, lifetime, emails and `hd`.

use std::time::Duration;

use super::{Kind, VerifyError};
use crate::token::Claims;

/// What the claims must satisfy; built once by the verifier's builder.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub kind: Kind,
    pub audiences: Vec<String>,
    pub issuers: Vec<String>,
    pub skew: Duration,
    pub max_lifetime: Duration,
    /// Exact emails allowed (lowercase); empty with `domains` empty: any.
    pub emails: Vec<String>,
    /// Email domains allowed (lowercase, without `@`).
    pub domains: Vec<String>,
    pub hosted_domain: Option<String>,
}

impl Policy {
    /// Checks `claims` at `now` (seconds since the epoch).
    pub(crate) fn check(&self, claims: &Claims, now: u64) -> Result<(), VerifyError> {
        let iss = claims
            .iss
            .as_deref()
            .ok_or(VerifyError::MissingClaim { claim: "iss" })?;
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(VerifyError::WrongIssuer {
                seen: iss.to_owned(),
            });
        }
        let aud = claims
            .aud
            .as_deref()
            .ok_or(VerifyError::MissingClaim { claim: "aud" })?;
        if !self.audiences.iter().any(|a| a == aud) {
            return Err(VerifyError::WrongAudience {
                seen: aud.to_owned(),
                expected: self.audiences.clone(),
            });
        }
        self.check_times(claims, now)?;
        self.check_email(claims)?;
        if let Some(expected) = &self.hosted_domain
            && claims.hd.as_deref() != Some(expected.as_str())
        {
            return Err(VerifyError::WrongHostedDomain {
                seen: claims.hd.clone(),
                expected: expected.clone(),
            });
        }
        Ok(())
    }

    fn check_times(&self, claims: &Claims, now: u64) -> Result<(), VerifyError> {
        let skew = self.skew.as_secs();
        let exp = claims
            .exp
            .ok_or(VerifyError::MissingClaim { claim: "exp" })?;
        let iat = claims
            .iat
            .ok_or(VerifyError::MissingClaim { claim: "iat" })?;
        if now >= exp.saturating_add(skew) {
            return Err(VerifyError::Expired { exp, now, skew });
        }
        for (claim, at) in [("iat", Some(iat)), ("nbf", claims.nbf)] {
            if let Some(at) = at
                && at > now.saturating_add(skew)
            {
                return Err(VerifyError::NotYetValid { claim, at, now });
            }
        }
        let lifetime = exp.saturating_sub(iat);
        let max = self.max_lifetime.as_secs();
        if lifetime > max {
            return Err(VerifyError::LifetimeTooLong { lifetime, max });
        }
        Ok(())
    }

    fn check_email(&self, claims: &Claims) -> Result<(), VerifyError> {
        if self.emails.is_empty() && self.domains.is_empty() {
            return Ok(());
        }
        let email = claims.email.as_deref().ok_or(VerifyError::MissingEmail)?;
        // IAP vouches for the email it puts in its own assertion and sends
        // no `email_verified`; Google ID tokens must say it is verified.
        if self.kind == Kind::Google && claims.email_verified != Some(true) {
            return Err(VerifyError::EmailNotVerified {
                email: email.to_owned(),
            });
        }
        let lower = email.to_ascii_lowercase();
        let domain_ok = lower
            .rsplit_once('@')
            .is_some_and(|(local, d)| !local.is_empty() && self.domains.iter().any(|x| x == d));
        if domain_ok || self.emails.contains(&lower) {
            Ok(())
        } else {
            Err(VerifyError::EmailNotAllowed {
                email: email.to_owned(),
            })
        }
    }
}
