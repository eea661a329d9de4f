//! Serde for the model's string enums: each is stored (and shown) as the API spells it, through
//! its `as_str` and `FromStr`, so the spelling lives in one place per enum.

/// Implements `Serialize`/`Deserialize` for enums with `as_str()` and `FromStr`.
macro_rules! serde_as_str {
    ($($t:ty),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(|e| serde::de::Error::custom(format!("{e}")))
            }
        }
    )*};
}

pub(crate) use serde_as_str;
