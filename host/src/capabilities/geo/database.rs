//! The operator's `.mmdb` database: loaded at start, reloaded when the file
//! changes, read in both record shapes people deploy.
//!
//! One serde shape covers both: the GeoIP2 schema (MaxMind GeoIP2/GeoLite2
//! City and Country, DB-IP lite: nested `country.iso_code`,
//! `city.names.en`, `location.latitude`, ...) and the flat schema of the
//! ip-location-db datasets (`country_code`, `city`, `state1`, `latitude`,
//! ...). The record decides: nested fields win where both exist.

use arc_swap::ArcSwapOption;
use maxminddb::Reader;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// How often the database file is checked for a new version. Vendors
/// publish weekly; a few seconds of delay is invisible, and a `stat` every
/// 5 s costs nothing.
pub const GEO_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Why the database could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("reading the geo database {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a MaxMind DB.
    #[error("{path} is not a valid .mmdb file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
}

/// What the database knows about one address (the WIT `location`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// ISO 3166-1 alpha-2.
    pub country_code: Option<String>,
    /// English country name.
    pub country_name: Option<String>,
    /// First subdivision's English name.
    pub region: Option<String>,
    /// English city name.
    pub city: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// IANA time zone.
    pub time_zone: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Place {
    iso_code: Option<String>,
    code: Option<String>,
    names: BTreeMap<String, String>,
}

impl Place {
    fn name(&self) -> Option<String> {
        self.names.get("en").cloned()
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CityField {
    Nested(Place),
    Flat(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Coordinates {
    #[serde(deserialize_with = "number")]
    latitude: Option<f64>,
    #[serde(deserialize_with = "number")]
    longitude: Option<f64>,
    time_zone: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Postal {
    code: Option<String>,
}

/// Both schemas' fields; absent ones stay `None`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Record {
    country: Option<Place>,
    registered_country: Option<Place>,
    continent: Option<Place>,
    city: Option<CityField>,
    subdivisions: Vec<Place>,
    postal: Option<Postal>,
    location: Option<Coordinates>,
    country_code: Option<String>,
    state1: Option<String>,
    postcode: Option<String>,
    #[serde(deserialize_with = "number")]
    latitude: Option<f64>,
    #[serde(deserialize_with = "number")]
    longitude: Option<f64>,
    timezone: Option<String>,
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<String>,
}

impl From<Record> for Location {
    fn from(r: Record) -> Self {
        let country = r.country.or(r.registered_country);
        let (city, flat_city) = match r.city {
            Some(CityField::Nested(place)) => (place.name(), None),
            Some(CityField::Flat(name)) => (None, Some(name)),
            None => (None, None),
        };
        let coords = r.location.unwrap_or_default();
        Location {
            country_code: country
                .as_ref()
                .and_then(|c| c.iso_code.clone())
                .or(r.country_code),
            country_name: country.as_ref().and_then(Place::name),
            region: r.subdivisions.first().and_then(Place::name).or(r.state1),
            city: city.or(flat_city),
            continent: r.continent.and_then(|c| c.code),
            postal_code: r.postal.and_then(|p| p.code).or(r.postcode),
            latitude: coords.latitude.or(r.latitude),
            longitude: coords.longitude.or(r.longitude),
            time_zone: coords.time_zone.or(r.timezone),
            asn: r.autonomous_system_number,
            as_org: r.autonomous_system_organization,
        }
    }
}

/// A coordinate stored as double (GeoIP2), float (ip-location-db), an
/// integer or text: databases differ.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct AnyNumber;
    impl serde::de::Visitor<'_> for AnyNumber {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_f32<E>(self, v: f32) -> Result<Self::Value, E> {
            // Via its decimal text, so 35.69f32 reads as 35.69, not 35.68999.
            Ok(v.to_string().parse().ok())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }
    }
    d.deserialize_any(AnyNumber)
}

/// The file's identity, to notice a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

struct Loaded {
    reader: Reader<Vec<u8>>,
    stamp: Option<Stamp>,
}

/// The geo database, or none. Lookups never fail: unknown is `None`.
pub struct GeoDb {
    path: Option<PathBuf>,
    current: ArcSwapOption<Loaded>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("path", &self.path).finish()
    }
}

impl GeoDb {
    /// No database: every lookup answers `None`.
    pub fn none() -> Arc<Self> {
        Arc::new(Self {
            path: None,
            current: ArcSwapOption::empty(),
        })
    }

    /// Loads `path`; a missing or invalid file is an error at start.
    pub fn open(path: &Path) -> Result<Arc<Self>, GeoError> {
        let loaded = load(path)?;
        tracing::info!(
            path = %path.display(),
            database_type = loaded.reader.metadata().database_type,
            ip_version = loaded.reader.metadata().ip_version,
            "geo database loaded"
        );
        Ok(Arc::new(Self {
            path: Some(path.to_owned()),
            current: ArcSwapOption::from_pointee(loaded),
        }))
    }

    /// Whether a database is loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// What the database knows about `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<Location> {
        let loaded = self.current.load_full()?;
        let ip = ip.to_canonical();
        let result = loaded.reader.lookup(ip).ok()?;
        let record: Record = result.decode().ok()??;
        Some(record.into())
    }

    /// Loads the file again if it changed since the last load. Returns
    /// whether it did; a broken new file is an error and the old data
    /// keeps serving.
    pub fn reload_if_changed(&self) -> Result<bool, GeoError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let now = stamp(path);
        let before = self.current.load().as_ref().and_then(|l| l.stamp);
        if now.is_none() || now == before {
            return Ok(false);
        }
        let loaded = load(path)?;
        self.current.store(Some(Arc::new(loaded)));
        tracing::info!(path = %path.display(), "geo database reloaded");
        Ok(true)
    }

    /// Checks for a new file every `interval` until the database is
    /// dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        if self.path.is_none() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(db) = weak.upgrade() else { return };
                let reload = tokio::task::spawn_blocking(move || db.reload_if_changed()).await;
                if let Ok(Err(err)) = reload {
                    tracing::warn!(error = %err, "geo database not reloaded; the previous one keeps serving");
                }
            }
        });
    }
}

fn load(path: &Path) -> Result<Loaded, GeoError> {
    let before = stamp(path);
    let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
        path: path.to_owned(),
        source,
    })?;
    let reader = Reader::from_source(bytes).map_err(|err| GeoError::Invalid {
        path: path.to_owned(),
        reason: err.to_string(),
    })?;
    Ok(Loaded {
        reader,
        stamp: before,
    })
}
