//! `verge:edge/geo`: the client's address and location, from the
//! operator's MaxMind-format database. Without a database, every lookup
//! answers none, never an error page.

mod database;

pub use database::{GEO_RELOAD_INTERVAL, GeoDb, GeoError, Location};

use super::bindings::verge::edge::geo as wit;
use super::{PerRequest, RequestScope};
use std::net::IpAddr;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// One request's view: the database and the client's address.
#[derive(Clone, Debug)]
pub struct GeoCtx {
    db: Arc<GeoDb>,
    client: Option<IpAddr>,
}

impl Default for GeoCtx {
    fn default() -> Self {
        Self {
            db: GeoDb::none(),
            client: None,
        }
    }
}

impl GeoCtx {
    /// Lookups in `db`, with no client yet.
    pub fn new(db: Arc<GeoDb>) -> Self {
        Self { db, client: None }
    }
}

impl PerRequest for GeoCtx {
    /// The same database, for the request's client.
    fn for_request(self, scope: &RequestScope) -> Self {
        Self {
            client: scope.client_ip,
            ..self
        }
    }
}

impl From<Location> for wit::Location {
    fn from(l: Location) -> Self {
        Self {
            country_code: l.country_code,
            country_name: l.country_name,
            region: l.region,
            city: l.city,
            continent: l.continent,
            postal_code: l.postal_code,
            latitude: l.latitude,
            longitude: l.longitude,
            time_zone: l.time_zone,
            asn: l.asn,
            as_org: l.as_org,
        }
    }
}

impl wit::Host for GeoCtx {
    fn client_ip(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.client.map(|ip| ip.to_string()))
    }

    fn client(&mut self) -> wasmtime::Result<Option<wit::Location>> {
        Ok(self
            .client
            .and_then(|ip| self.db.lookup(ip))
            .map(wit::Location::from))
    }

    fn lookup(&mut self, ip: String) -> wasmtime::Result<Option<wit::Location>> {
        Ok(ip
            .trim()
            .parse::<IpAddr>()
            .ok()
            .and_then(|ip| self.db.lookup(ip))
            .map(wit::Location::from))
    }
}

/// Links `verge:edge/geo` into `linker`, over the context `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut GeoCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<GeoCtx>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmdb_writer::{Value, Writer};
    use std::path::Path;

    fn names(en: &str) -> Value {
        Value::map([("names", Value::map([("en", Value::from(en))]))])
    }

    fn city_db(path: &Path, city: &str) {
        let mut w = Writer::new("GeoLite2-City");
        let record = Value::map([
            (
                "country",
                Value::map([
                    ("iso_code", Value::from("DE")),
                    ("names", Value::map([("en", Value::from("Germany"))])),
                ]),
            ),
            ("continent", Value::map([("code", Value::from("EU"))])),
            ("city", names(city)),
            ("subdivisions", Value::Array(vec![names("Berlin")])),
            ("postal", Value::map([("code", Value::from("10115"))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::Double(52.52)),
                    ("longitude", Value::Double(13.405)),
                    ("time_zone", Value::from("Europe/Berlin")),
                ]),
            ),
        ]);
        w.insert_value(
            "81.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
            record.clone(),
        )
        .unwrap();
        w.insert_value("2a01::/16".parse::<ipnet::IpNet>().unwrap(), record)
            .unwrap();
        std::fs::write(path, w.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn geoip2_city_records_for_v4_and_v6() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.mmdb");
        city_db(&path, "Berlin");
        let db = GeoDb::open(&path).unwrap();
        for ip in ["81.2.3.4", "2a01:4f8::1", "::ffff:81.2.3.4"] {
            let loc = db.lookup(ip.parse().unwrap()).unwrap();
            assert_eq!(loc.country_code.as_deref(), Some("DE"), "{ip}");
            assert_eq!(loc.country_name.as_deref(), Some("Germany"));
            assert_eq!(loc.city.as_deref(), Some("Berlin"));
            assert_eq!(loc.region.as_deref(), Some("Berlin"));
            assert_eq!(loc.continent.as_deref(), Some("EU"));
            assert_eq!(loc.postal_code.as_deref(), Some("10115"));
            assert_eq!(loc.latitude, Some(52.52));
            assert_eq!(loc.time_zone.as_deref(), Some("Europe/Berlin"));
        }
        assert_eq!(db.lookup("8.8.8.8".parse().unwrap()), None);
    }

    #[test]
    fn flat_ip_location_db_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.mmdb");
        let mut w = Writer::new("ip-location-db-city");
        let record = Value::map([
            ("country_code", Value::from("JP")),
            ("state1", Value::from("Tokyo")),
            ("city", Value::from("Shinjuku")),
            ("postcode", Value::from("160-0022")),
            ("latitude", Value::Float(35.69)),
            ("longitude", Value::Float(139.70)),
            ("timezone", Value::from("Asia/Tokyo")),
        ]);
        w.insert_value("1.0.16.0/20".parse::<ipnet::IpNet>().unwrap(), record)
            .unwrap();
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        let loc = GeoDb::open(&path)
            .unwrap()
            .lookup("1.0.16.1".parse().unwrap())
            .unwrap();
        assert_eq!(loc.country_code.as_deref(), Some("JP"));
        assert_eq!(loc.city.as_deref(), Some("Shinjuku"));
        assert_eq!(loc.region.as_deref(), Some("Tokyo"));
        assert_eq!(loc.postal_code.as_deref(), Some("160-0022"));
        assert_eq!(loc.time_zone.as_deref(), Some("Asia/Tokyo"));
        assert!(loc.latitude.is_some_and(|l| (l - 35.69).abs() < 1e-3));
        assert_eq!(loc.country_name, None);
    }

    #[test]
    fn reload_picks_up_a_new_file_and_keeps_the_old_one_on_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.mmdb");
        city_db(&path, "Berlin");
        let db = GeoDb::open(&path).unwrap();
        assert!(!db.reload_if_changed().unwrap(), "unchanged file");
        city_db(&path, "Hamburg-Altona");
        assert!(db.reload_if_changed().unwrap());
        let loc = db.lookup("81.1.1.1".parse().unwrap()).unwrap();
        assert_eq!(loc.city.as_deref(), Some("Hamburg-Altona"));
        std::fs::write(&path, b"not a database at all, longer than before").unwrap();
        assert!(db.reload_if_changed().is_err());
        let loc = db.lookup("81.1.1.1".parse().unwrap()).unwrap();
        assert_eq!(loc.city.as_deref(), Some("Hamburg-Altona"));
    }

    #[test]
    fn bad_files_fail_at_open_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.mmdb");
        std::fs::write(&path, b"junk").unwrap();
        let err = GeoDb::open(&path).unwrap_err().to_string();
        assert!(err.contains("junk.mmdb"), "{err}");
        let err = GeoDb::open(&dir.path().join("missing.mmdb"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.mmdb"), "{err}");
        assert_eq!(GeoDb::none().lookup("1.1.1.1".parse().unwrap()), None);
    }
}
