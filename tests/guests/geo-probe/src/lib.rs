//! Reports what the geo interface says, for end-to-end tests:
//! `/geo-probe?ip=IP` answers lines `client_ip=...`, `client=...` and
//! `lookup=...`, each location as `country|name|region|city|continent|lat`
//! or `none`.

use verge_sdk::geo::{self, Location};
use verge_sdk::{Request, Response};

fn show(location: Option<Location>) -> String {
    match location {
        None => "none".into(),
        Some(l) => format!(
            "{}|{}|{}|{}|{}|{}",
            l.country_code.unwrap_or_default(),
            l.country_name.unwrap_or_default(),
            l.region.unwrap_or_default(),
            l.city.unwrap_or_default(),
            l.continent.unwrap_or_default(),
            l.latitude.map(|v| v.to_string()).unwrap_or_default(),
        ),
    }
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let lookup = req.query_param("ip").map(geo::lookup).unwrap_or_default();
    Response::text(format!(
        "client_ip={}\nclient={}\nlookup={}\n",
        geo::client_ip().unwrap_or_else(|| "none".into()),
        show(geo::client()),
        show(lookup),
    ))
}
