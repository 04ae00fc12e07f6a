//! Small `.mmdb` geo databases written in the test, in the shapes people
//! deploy: GeoIP2/GeoLite2 City and Country, and the flat ip-location-db
//! schema. Germany is 81.0.0.0/8 and 2a01::/16; Japan is 1.0.16.0/20 and
//! 2400:4000::/24; the US is 8.8.0.0/16.

use ipnet::IpNet;
use mmdb_writer::{Value, Writer};
use std::path::Path;

fn names(en: &str) -> Value {
    Value::map([("names", Value::map([("en", Value::from(en))]))])
}

fn country(iso: &str, name: &str, continent: &str) -> [(&'static str, Value); 3] {
    [
        (
            "country",
            Value::map([
                ("iso_code", Value::from(iso)),
                ("names", Value::map([("en", Value::from(name))])),
            ]),
        ),
        (
            "registered_country",
            Value::map([("iso_code", Value::from(iso))]),
        ),
        ("continent", Value::map([("code", Value::from(continent))])),
    ]
}

/// One fixture place and the networks it covers.
struct Place {
    iso: &'static str,
    name: &'static str,
    continent: &'static str,
    region: &'static str,
    city: &'static str,
    tz: &'static str,
    lat: f64,
    lon: f64,
    nets: &'static [&'static str],
}

const PLACES: [Place; 3] = [
    Place {
        iso: "DE",
        name: "Germany",
        continent: "EU",
        region: "Berlin",
        city: "Berlin",
        tz: "Europe/Berlin",
        lat: 52.52,
        lon: 13.405,
        nets: &["81.0.0.0/8", "2a01::/16"],
    },
    Place {
        iso: "JP",
        name: "Japan",
        continent: "AS",
        region: "Tokyo",
        city: "Shinjuku",
        tz: "Asia/Tokyo",
        lat: 35.69,
        lon: 139.7,
        nets: &["1.0.16.0/20", "2400:4000::/24"],
    },
    Place {
        iso: "US",
        name: "United States",
        continent: "NA",
        region: "California",
        city: "Mountain View",
        tz: "America/Los_Angeles",
        lat: 37.386,
        lon: -122.084,
        nets: &["8.8.0.0/16"],
    },
];

fn insert_all(w: &mut Writer, nets: &[&str], record: &Value) {
    for net in nets {
        w.insert_value(net.parse::<IpNet>().unwrap(), record.clone())
            .unwrap();
    }
}

fn write(path: &Path, writer: &Writer) {
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

/// A GeoLite2-City shaped database.
pub fn city_db(path: &Path) {
    let mut w = Writer::new("GeoLite2-City");
    for Place {
        iso,
        name,
        continent,
        region,
        city,
        tz,
        lat,
        lon,
        nets,
    } in PLACES
    {
        let mut fields = country(iso, name, continent).to_vec();
        fields.push(("city", names(city)));
        fields.push(("subdivisions", Value::Array(vec![names(region)])));
        fields.push((
            "location",
            Value::map([
                ("latitude", Value::Double(lat)),
                ("longitude", Value::Double(lon)),
                ("time_zone", Value::from(tz)),
            ]),
        ));
        let record = Value::map(fields);
        insert_all(&mut w, nets, &record);
    }
    write(path, &w);
}

/// A GeoLite2-Country shaped database: countries and continents only.
pub fn country_db(path: &Path) {
    let mut w = Writer::new("GeoLite2-Country");
    for Place {
        iso,
        name,
        continent,
        nets,
        ..
    } in PLACES
    {
        let record = Value::map(country(iso, name, continent));
        insert_all(&mut w, nets, &record);
    }
    write(path, &w);
}

/// An ip-location-db (flat schema) database with float coordinates.
pub fn flat_db(path: &Path) {
    let mut w = Writer::new("ip-location-db-city");
    for Place {
        iso,
        region,
        city,
        tz,
        lat,
        lon,
        nets,
        ..
    } in PLACES
    {
        #[allow(clippy::cast_possible_truncation, reason = "the schema stores f32")]
        let record = Value::map([
            ("country_code", Value::from(iso)),
            ("state1", Value::from(region)),
            ("city", Value::from(city)),
            ("latitude", Value::Float(lat as f32)),
            ("longitude", Value::Float(lon as f32)),
            ("timezone", Value::from(tz)),
        ]);
        insert_all(&mut w, nets, &record);
    }
    write(path, &w);
}
