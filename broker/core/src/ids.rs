//! Identifiers and small value types, each parsed once at the edge.
//!
//! A value of these types is valid by construction: a `Jurisdiction` is an assigned
//! ISO 3166-1 alpha-2 code, a `MemberId` is a lowercase slug, and so on.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not an assigned ISO 3166-1 alpha-2 code.
    #[error("`{0}` is not an ISO 3166-1 alpha-2 country code (two capital letters, e.g. FR)")]
    Jurisdiction(String),
    /// Not a slug of the allowed shape.
    #[error("`{value}` is not a valid {what}: use 1 to 63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit")]
    Slug {
        /// The kind of identifier.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// Not one of the resource types.
    #[error("`{0}` is not a resource type (instance, volume or bucket)")]
    ResourceType(String),
}

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted, two bytes each.
const ISO_3166_ALPHA2: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// The members of the European Union and of the European Economic Area.
const EU_EEA: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// A jurisdiction: an ISO 3166-1 alpha-2 country code such as `FR`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jurisdiction([u8; 2]);

impl Jurisdiction {
    /// Parses an assigned ISO 3166-1 alpha-2 code (upper case only).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bytes = value.as_bytes();
        let valid = bytes.len() == 2
            && bytes.iter().all(u8::is_ascii_uppercase)
            && ISO_3166_ALPHA2
                .as_bytes()
                .chunks_exact(2)
                .any(|code| code == bytes);
        if valid {
            Ok(Self([bytes[0], bytes[1]]))
        } else {
            Err(IdError::Jurisdiction(value.to_owned()))
        }
    }

    /// The two-letter code.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// Whether the country belongs to the EU or the EEA.
    pub fn is_eu_eea(&self) -> bool {
        EU_EEA.contains(&self.as_str())
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Jurisdiction {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Jurisdiction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Jurisdiction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn is_slug(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Declares a slug newtype: lowercase, 1–63 characters, parsed at the edge.
macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses a slug (`a-z`, `0-9`, `-`, `_`, `.`; 1 to 63 characters).
            pub fn parse(value: &str) -> Result<Self, IdError> {
                if is_slug(value) {
                    Ok(Self(Arc::from(value)))
                } else {
                    Err(IdError::Slug { what: $what, value: value.to_owned() })
                }
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// A tenant of the broker, e.g. `acme`.
    TenantId,
    "tenant id"
);
slug_id!(
    /// A member cloud of the alliance, e.g. `numergy-fr`.
    MemberId,
    "member id"
);
slug_id!(
    /// A data class, e.g. `health`; what it requires comes from config.
    DataClassName,
    "data class"
);
slug_id!(
    /// A certification a member holds, e.g. `secnumcloud`.
    Certification,
    "certification"
);
slug_id!(
    /// A broker-wide instance size, e.g. `small`; each member maps it to its own flavour.
    SizeName,
    "size"
);
slug_id!(
    /// A broker-wide image name, e.g. `debian-12`; each member maps it to its own image id.
    ImageName,
    "image"
);

/// The kinds of resource the broker provisions; also the services a member offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    /// A virtual machine.
    Instance,
    /// A block storage volume.
    Volume,
    /// An object storage bucket.
    Bucket,
}

impl ResourceType {
    /// All resource types, in a stable order.
    pub const ALL: [ResourceType; 3] = [Self::Instance, Self::Volume, Self::Bucket];

    /// The lowercase name used in routes, columns and messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Volume => "volume",
            Self::Bucket => "bucket",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        match value {
            "instance" => Ok(Self::Instance),
            "volume" => Ok(Self::Volume),
            "bucket" => Ok(Self::Bucket),
            other => Err(IdError::ResourceType(other.to_owned())),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdictions_are_assigned_iso_codes() {
        for ok in ["FR", "BE", "DE", "LU", "IT", "US", "ZW", "AD"] {
            assert_eq!(
                Jurisdiction::parse(ok).map(|j| j.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in ["fr", "F", "FRA", "XX", "ZZ", "", "EU", "UK", "F1"] {
            assert!(Jurisdiction::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn the_code_table_is_sorted_and_complete() {
        let codes: Vec<&[u8]> = ISO_3166_ALPHA2.as_bytes().chunks_exact(2).collect();
        assert_eq!(codes.len(), 249);
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
        assert!(EU_EEA.iter().all(|c| Jurisdiction::parse(c).is_ok()));
    }

    #[test]
    fn eu_eea_membership() {
        let fr = Jurisdiction::parse("FR").expect("FR");
        let no = Jurisdiction::parse("NO").expect("NO");
        let us = Jurisdiction::parse("US").expect("US");
        let ch = Jurisdiction::parse("CH").expect("CH");
        assert!(fr.is_eu_eea() && no.is_eu_eea());
        assert!(!us.is_eu_eea() && !ch.is_eu_eea());
    }

    #[test]
    fn slugs() {
        assert!(MemberId::parse("numergy-fr").is_ok());
        assert!(TenantId::parse("acme").is_ok());
        for bad in ["", "Acme", "-x", "a b", "é", &"a".repeat(64)] {
            assert!(MemberId::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn serde_refuses_invalid_values() {
        let err = serde_json::from_str::<Jurisdiction>("\"XX\"");
        assert!(err.is_err());
    }
}
