//! Decimal amounts as people write them ("10", "0.5") to and from 18-decimal base units
//! (ETH and DCN alike): parsing settings and flags, formatting for people.

use alloy::primitives::utils::{format_units, parse_units};
use alloy::primitives::U256;

/// A value that is not a decimal amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{text}` is not a decimal amount (for example 10 or 0.5)")]
pub struct AmountError {
    /// The setting or flag it came from.
    pub what: String,
    /// The text given.
    pub text: String,
}

/// Parses a decimal amount of an 18-decimal unit (ETH or DCN) into base units; `what`
/// names the setting in the error.
pub fn parse_amount(text: &str, what: &str) -> Result<U256, AmountError> {
    parse_units(text.trim(), 18)
        .map(|v| v.get_absolute())
        .map_err(|_| AmountError { what: what.to_string(), text: text.to_string() })
}

/// Formats base units as a decimal with at most 4 fraction digits ("10", "0.25").
pub fn format_amount(value: U256) -> String {
    let full = format_units(value, 18).unwrap_or_else(|_| value.to_string());
    match full.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.get(..4).unwrap_or(frac).trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ten = parse_amount("10", "eth").unwrap();
        assert_eq!(ten, U256::from(10u64) * U256::from(10u64).pow(U256::from(18)));
        assert_eq!(format_amount(ten), "10");
        assert_eq!(format_amount(parse_amount("0.25", "x").unwrap()), "0.25");
        assert_eq!(format_amount(parse_amount("1.123456", "x").unwrap()), "1.1234");
        assert!(parse_amount("ten", "fund.eth").unwrap_err().to_string().contains("fund.eth `ten`"));
    }
}
