//! Effective limits: host defaults, capped by the tenant's ceiling, then the
//! app's overrides below that ceiling.

use super::HttpLimits;
use crate::runtime::{FUEL_PER_CPU_MS, Limits};
use crate::storage::records::LimitOverrides;
use std::time::Duration;

/// The limits an app runs under. The tenant's values replace the host's
/// defaults; the app's values apply only where they are lower than the
/// tenant's (an app cannot raise its tenant's ceiling).
pub fn effective_limits(host: &Limits, tenant: &LimitOverrides, app: &LimitOverrides) -> Limits {
    let pick = |host: u64, tenant: Option<u64>, app: Option<u64>| {
        let ceiling = tenant.unwrap_or(host);
        app.map_or(ceiling, |a| a.min(ceiling))
    };
    let host_cpu_ms = host.fuel / FUEL_PER_CPU_MS.max(1);
    let host_wall_ms = u64::try_from(host.wall_clock.as_millis()).unwrap_or(u64::MAX);
    let host_mib = u64::try_from(host.memory_bytes >> 20).unwrap_or(u64::MAX);
    let cpu_ms = pick(host_cpu_ms, tenant.cpu_ms, app.cpu_ms);
    let mib = pick(host_mib, tenant.memory_mib, app.memory_mib);
    Limits {
        fuel: cpu_ms.saturating_mul(FUEL_PER_CPU_MS),
        wall_clock: Duration::from_millis(pick(
            host_wall_ms,
            tenant.wall_clock_ms,
            app.wall_clock_ms,
        )),
        memory_bytes: usize::try_from(mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1 << 20),
        table_elements: usize::try_from(pick(
            u64::try_from(host.table_elements).unwrap_or(u64::MAX),
            tenant.table_elements,
            app.table_elements,
        ))
        .unwrap_or(usize::MAX),
        instances: usize::try_from(pick(
            u64::try_from(host.instances).unwrap_or(u64::MAX),
            tenant.instances,
            app.instances,
        ))
        .unwrap_or(usize::MAX),
        max_subrequests: u32::try_from(pick(
            host.max_subrequests.into(),
            tenant.max_subrequests.map(u64::from),
            app.max_subrequests.map(u64::from),
        ))
        .unwrap_or(u32::MAX),
    }
}

/// The HTTP caps an app runs under: the same rule as
/// [`effective_limits`], and never above the server's own caps.
pub fn effective_http_limits(
    host: &HttpLimits,
    tenant: &LimitOverrides,
    app: &LimitOverrides,
) -> HttpLimits {
    let pick = |host: usize, tenant: Option<u64>, app: Option<u64>| {
        let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let ceiling = tenant.map_or(host, as_usize).min(host);
        app.map_or(ceiling, |a| as_usize(a).min(ceiling))
    };
    HttpLimits {
        max_request_body_bytes: pick(
            host.max_request_body_bytes,
            tenant.max_request_body_bytes,
            app.max_request_body_bytes,
        ),
        max_response_body_bytes: pick(
            host.max_response_body_bytes,
            tenant.max_response_body_bytes,
            app.max_response_body_bytes,
        ),
        max_header_bytes: pick(
            host.max_header_bytes,
            tenant.max_header_bytes,
            app.max_header_bytes,
        ),
        ..*host
    }
}

/// Every limit an app runs under, written out in the units a manifest
/// uses: what the deploy answer and `apps show` report, so a manifest
/// asking for more than the tenant's ceiling sees what it got.
pub fn effective_overrides(
    host: &Limits,
    host_http: &HttpLimits,
    tenant: &LimitOverrides,
    app: &LimitOverrides,
) -> LimitOverrides {
    let limits = effective_limits(host, tenant, app);
    let http = effective_http_limits(host_http, tenant, app);
    let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    LimitOverrides {
        cpu_ms: Some(limits.fuel / FUEL_PER_CPU_MS.max(1)),
        wall_clock_ms: Some(u64::try_from(limits.wall_clock.as_millis()).unwrap_or(u64::MAX)),
        memory_mib: Some(as_u64(limits.memory_bytes >> 20)),
        max_concurrency: app.max_concurrency.or(tenant.max_concurrency),
        max_request_body_bytes: Some(as_u64(http.max_request_body_bytes)),
        max_response_body_bytes: Some(as_u64(http.max_response_body_bytes)),
        max_header_bytes: Some(as_u64(http.max_header_bytes)),
        table_elements: Some(as_u64(limits.table_elements)),
        instances: Some(as_u64(limits.instances)),
        max_subrequests: Some(limits.max_subrequests),
        kv_quota_mib: tenant.kv_quota_mib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_overrides_stay_below_the_tenant_ceiling() {
        let host = Limits::default();
        let tenant = LimitOverrides {
            cpu_ms: Some(20),
            memory_mib: Some(64),
            ..LimitOverrides::default()
        };
        let app = LimitOverrides {
            cpu_ms: Some(100),
            memory_mib: Some(32),
            wall_clock_ms: Some(1000),
            ..LimitOverrides::default()
        };
        let l = effective_limits(&host, &tenant, &app);
        assert_eq!(
            l.fuel,
            20 * FUEL_PER_CPU_MS,
            "app asked for more than the tenant allows"
        );
        assert_eq!(l.memory_bytes, 32 << 20);
        assert_eq!(l.wall_clock, Duration::from_secs(1));
        assert_eq!(
            l.max_subrequests, 50,
            "the host default when nobody sets it"
        );
        let tenant = LimitOverrides {
            max_subrequests: Some(10),
            ..LimitOverrides::default()
        };
        let asks_more = LimitOverrides {
            max_subrequests: Some(500),
            ..LimitOverrides::default()
        };
        assert_eq!(
            effective_limits(&host, &tenant, &asks_more).max_subrequests,
            10
        );
        let asks_less = LimitOverrides {
            max_subrequests: Some(2),
            ..LimitOverrides::default()
        };
        assert_eq!(
            effective_limits(&host, &tenant, &asks_less).max_subrequests,
            2
        );
        let d = effective_limits(
            &host,
            &LimitOverrides::default(),
            &LimitOverrides::default(),
        );
        assert_eq!(d, host);
    }
}
