//! Figures that can be non-finite, written so that a reader tells them apart. A lossless copy's
//! SQNR is +∞; a model whose outputs hold NaN has NaN figures. JSON has no number for either
//! (serde_json writes `null`, the same as "not measured"), so every file quantbench writes
//! holds them as the strings `"inf"`, `"-inf"` and `"nan"`. Numbers and those strings both read
//! back (sessions written before this hold RON's own `inf` and `NaN`).
//!
//! Use as `#[serde(with = "crate::eval::figure")]` on an `f64`, `figure::option` on an
//! `Option<f64>`.

use serde::{de, Deserializer, Serializer};

/// The word a non-finite value is written as; `None` for a finite one.
pub fn word(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("nan")
    } else if v == f64::INFINITY {
        Some("inf")
    } else if v == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// `v` as a JSON value: a number, one of the words, or `null` when not measured.
pub fn to_json(v: Option<f64>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(v) => match word(v) {
            Some(w) => serde_json::Value::from(w),
            None => serde_json::Value::from(v),
        },
    }
}

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match word(*v) {
        Some(w) => s.serialize_str(w),
        None => s.serialize_f64(*v),
    }
}

struct Figure;

impl<'de> de::Visitor<'de> for Figure {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, or \"inf\", \"-inf\" or \"nan\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(Figure)
}

/// The same for an optional figure (`None`: not measured).
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&Wrapped(*v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }

    struct Wrapped(f64);

    impl serde::Serialize for Wrapped {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for Wrapped {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::deserialize(d).map(Wrapped)
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Figures {
        #[serde(with = "super")]
        sqnr_db: f64,
        #[serde(with = "super::option")]
        cosine: Option<f64>,
        #[serde(with = "super::option")]
        agreement: Option<f64>,
    }

    fn both_ways(v: f64) -> (String, String, f64) {
        let f = Figures {
            sqnr_db: v,
            cosine: Some(v),
            agreement: None,
        };
        let json = serde_json::to_string(&f).unwrap();
        let ron = ron::to_string(&f).unwrap();
        let from_json: Figures = serde_json::from_str(&json).unwrap();
        let from_ron: Figures = ron::from_str(&ron).unwrap();
        assert_eq!(
            from_json.cosine.map(f64::to_bits),
            from_ron.cosine.map(f64::to_bits)
        );
        assert!(from_json.agreement.is_none() && from_ron.agreement.is_none());
        (json, ron, from_ron.sqnr_db)
    }

    #[test]
    fn lossless_broken_and_unmeasured_are_three_different_things() {
        let (json, _, back) = both_ways(f64::INFINITY);
        assert_eq!(json, r#"{"sqnr_db":"inf","cosine":"inf","agreement":null}"#);
        assert_eq!(back, f64::INFINITY);
        let (json, _, back) = both_ways(f64::NAN);
        assert_eq!(json, r#"{"sqnr_db":"nan","cosine":"nan","agreement":null}"#);
        assert!(back.is_nan());
        let (json, _, back) = both_ways(f64::NEG_INFINITY);
        assert!(json.starts_with(r#"{"sqnr_db":"-inf""#), "{json}");
        assert_eq!(back, f64::NEG_INFINITY);
        let (json, _, back) = both_ways(31.25);
        assert_eq!(json, r#"{"sqnr_db":31.25,"cosine":31.25,"agreement":null}"#);
        assert_eq!(back, 31.25);
    }

    #[test]
    fn files_written_before_read_rons_own_words() {
        let old: Figures =
            ron::from_str("(sqnr_db: inf, cosine: Some(NaN), agreement: Some(1.0))").unwrap();
        assert_eq!(old.sqnr_db, f64::INFINITY);
        assert!(old.cosine.is_some_and(f64::is_nan));
        assert_eq!(old.agreement, Some(1.0));
        assert!(serde_json::from_str::<Figures>(
            r#"{"sqnr_db":"lots","cosine":null,"agreement":null}"#
        )
        .is_err());
    }
}
