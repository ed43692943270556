//! The National Provider Identifier: ten digits whose last is a Luhn check digit computed over
//! the nine others prefixed with the health-industry card issuer prefix 80840 (ISO 7812).

use std::fmt;

use serde_json::Value;

/// The FHIR identifier system of NPIs.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";

/// The Luhn sum of the constant prefix 80840 as it falls in front of the nine NPI digits.
const PREFIX_80840_LUHN_SUM: u32 = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpiError {
    #[error("an NPI is exactly 10 digits; {value:?} is not")]
    NotTenDigits { value: String },
    #[error("NPI {value} fails its check digit (the last digit should be {expected})")]
    CheckDigit { value: String, expected: u8 },
}

/// A syntactically valid NPI (which says nothing about whether CMS issued it or it is active).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Npi(String);

impl Npi {
    pub fn parse(value: &str) -> Result<Npi, NpiError> {
        if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NpiError::NotTenDigits {
                value: value.chars().take(40).collect(),
            });
        }
        let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
        let expected = check_digit(&digits[..9]);
        if u32::from(expected) != digits[9] {
            return Err(NpiError::CheckDigit {
                value: value.to_string(),
                expected,
            });
        }
        Ok(Npi(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Luhn check digit of the nine base digits, counting the 80840 prefix.
fn check_digit(base: &[u32]) -> u8 {
    // With the check digit appended, the rightmost base digit is the first one doubled; nine
    // base digits means the doubled ones are those at even indexes from the left.
    let sum: u32 = base
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum::<u32>()
        + PREFIX_80840_LUHN_SUM;
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Display for Npi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Npi {
    type Err = NpiError;
    fn from_str(s: &str) -> Result<Npi, NpiError> {
        Npi::parse(s)
    }
}

/// (index in `identifier`, value) of every identifier of the resource in the NPI system, valid or not.
pub fn npis_in(resource: &Value) -> Vec<(usize, String)> {
    resource
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, id)| id.get("system").and_then(Value::as_str) == Some(NPI_SYSTEM))
        .filter_map(|(i, id)| id.get("value").and_then(Value::as_str).map(|v| (i, v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_npis_parse() {
        for npi in [
            "1234567893",
            "1720377294",
            "1568946812",
            "1760485387",
            "1437410099",
            "1518425099",
            "1225701881",
            "1174270805",
        ] {
            assert_eq!(Npi::parse(npi).map(|n| n.to_string()), Ok(npi.to_string()), "{npi}");
        }
    }

    #[test]
    fn wrong_check_digits_are_told_apart_from_bad_shapes() {
        for (npi, expected) in [
            ("1234567890", 3),
            ("5631047582", 1),
            ("1234567898", 3),
            ("1720377295", 4),
            ("1568946813", 2),
        ] {
            assert_eq!(
                Npi::parse(npi),
                Err(NpiError::CheckDigit {
                    value: npi.to_string(),
                    expected
                }),
                "{npi}"
            );
        }
        for npi in [
            "123456789",
            "12345678901",
            "123456789a",
            "",
            " 1234567893",
            "１234567893",
        ] {
            assert!(matches!(Npi::parse(npi), Err(NpiError::NotTenDigits { .. })), "{npi:?}");
        }
    }

    #[test]
    fn messages_are_for_people() {
        assert_eq!(
            Npi::parse("1234567890").unwrap_err().to_string(),
            "NPI 1234567890 fails its check digit (the last digit should be 3)"
        );
        assert_eq!(
            Npi::parse("123456789").unwrap_err().to_string(),
            "an NPI is exactly 10 digits; \"123456789\" is not"
        );
    }

    #[test]
    fn npis_in_finds_every_npi_identifier_with_its_index() {
        let practitioner = json!({
            "resourceType": "Practitioner",
            "identifier": [
                {"system": "http://example.org/staff", "value": "77"},
                {"system": NPI_SYSTEM, "value": "1234567893"},
                {"system": NPI_SYSTEM},
                {"system": NPI_SYSTEM, "value": "1234567890"}
            ]
        });
        assert_eq!(
            npis_in(&practitioner),
            vec![(1, "1234567893".to_string()), (3, "1234567890".to_string())]
        );
        assert!(npis_in(&json!({"resourceType": "Practitioner"})).is_empty());
    }
}
