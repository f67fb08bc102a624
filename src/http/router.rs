//! The route table: path → route, and (route, method) → what the endpoint needs.

use http::Method;

use super::problem::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Organization,
    Ledger,
    Variants,
    VariantImport,
    Variant(String),
    Humanizations,
    Humanization(String),
    HumanizationCancel(String),
    HumanizationExport(String),
    Jobs,
    Job(String),
    JobCancel(String),
    /// A screen of the web app (`/`, `/variants`, `/jobs/{id}`, …): its one HTML page.
    WebPage,
    /// A file of the web app under `/assets/`.
    WebAsset(String),
}

/// What an endpoint costs against the rate limit and quota (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostClass {
    Read,
    Write,
}

/// One (route, method) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    GetOrganization,
    ListLedger,
    ListVariants,
    CreateVariant,
    ImportVariants,
    GetVariant,
    DeleteVariant,
    ListHumanizations,
    SubmitHumanization,
    GetHumanization,
    CancelHumanization,
    ExportHumanization,
    ListJobs,
    GetJob,
    CancelJob,
    WebPage,
    WebAsset,
}

impl Endpoint {
    /// The scope the key needs; None for operator endpoints without auth and for the
    /// organization itself (every key may see whose key it is).
    pub fn scope(self) -> Option<&'static str> {
        use Endpoint::*;
        match self {
            Healthz | Readyz | Metrics | OpenApi | WebPage | WebAsset | GetOrganization => None,
            ListLedger => Some("credits:read"),
            ListVariants | GetVariant => Some("variants:read"),
            CreateVariant | ImportVariants | DeleteVariant => Some("variants:write"),
            ListHumanizations | GetHumanization | ExportHumanization => Some("humanizations:read"),
            SubmitHumanization => Some("humanizations:write"),
            CancelHumanization | CancelJob => Some("jobs:cancel"),
            ListJobs | GetJob => Some("jobs:read"),
        }
    }

    /// Whether the endpoint needs an API key at all.
    pub fn authenticated(self) -> bool {
        !matches!(
            self,
            Endpoint::Healthz
                | Endpoint::Readyz
                | Endpoint::Metrics
                | Endpoint::OpenApi
                | Endpoint::WebPage
                | Endpoint::WebAsset
        )
    }

    pub fn class(self) -> CostClass {
        use Endpoint::*;
        match self {
            CreateVariant | ImportVariants | DeleteVariant | SubmitHumanization
            | CancelHumanization | CancelJob => CostClass::Write,
            _ => CostClass::Read,
        }
    }

    /// Whether the endpoint reads a JSON body.
    pub fn has_body(self) -> bool {
        matches!(
            self,
            Endpoint::CreateVariant | Endpoint::ImportVariants | Endpoint::SubmitHumanization
        )
    }

    /// Query parameters the endpoint accepts; any other is a 400.
    pub fn query_params(self) -> &'static [&'static str] {
        use Endpoint::*;
        match self {
            ListLedger | ListVariants => &["limit", "starting_after"],
            ListHumanizations => &["limit", "starting_after", "status"],
            ListJobs => &["limit", "starting_after", "status", "object"],
            GetJob => &["wait"],
            ExportHumanization => &["format"],
            _ => &[],
        }
    }
}

impl Route {
    /// Resolves a path. Ids are taken as given; handlers decide whether they exist.
    pub fn resolve(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let id = |s: &str| s.to_string();
        Some(match segments.as_slice() {
            ["healthz"] => Route::Healthz,
            ["readyz"] => Route::Readyz,
            ["metrics"] => Route::Metrics,
            ["openapi.json"] => Route::OpenApi,
            ["v1", "organization"] => Route::Organization,
            ["v1", "credits", "ledger"] => Route::Ledger,
            [""] => Route::WebPage,
            [screen] if super::web::is_screen(screen) => Route::WebPage,
            ["jobs", j] if !j.is_empty() => Route::WebPage,
            ["assets", name] if !name.is_empty() => Route::WebAsset(id(name)),
            ["v1", "variants"] => Route::Variants,
            ["v1", "variants", "import"] => Route::VariantImport,
            ["v1", "variants", v] if !v.is_empty() => Route::Variant(id(v)),
            ["v1", "humanizations"] => Route::Humanizations,
            ["v1", "humanizations", h] if !h.is_empty() => Route::Humanization(id(h)),
            ["v1", "humanizations", h, "cancel"] if !h.is_empty() => {
                Route::HumanizationCancel(id(h))
            }
            ["v1", "humanizations", h, "export"] if !h.is_empty() => {
                Route::HumanizationExport(id(h))
            }
            ["v1", "jobs"] => Route::Jobs,
            ["v1", "jobs", j] if !j.is_empty() => Route::Job(id(j)),
            ["v1", "jobs", j, "cancel"] if !j.is_empty() => Route::JobCancel(id(j)),
            _ => return None,
        })
    }

    /// The path template, as `/metrics`, logs and the OpenAPI document name it.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Organization => "/v1/organization",
            Route::Ledger => "/v1/credits/ledger",
            Route::Variants => "/v1/variants",
            Route::VariantImport => "/v1/variants/import",
            Route::Variant(_) => "/v1/variants/{id}",
            Route::Humanizations => "/v1/humanizations",
            Route::Humanization(_) => "/v1/humanizations/{id}",
            Route::HumanizationCancel(_) => "/v1/humanizations/{id}/cancel",
            Route::HumanizationExport(_) => "/v1/humanizations/{id}/export",
            Route::Jobs => "/v1/jobs",
            Route::Job(_) => "/v1/jobs/{id}",
            Route::JobCancel(_) => "/v1/jobs/{id}/cancel",
            Route::WebPage => "/{screen}",
            Route::WebAsset(_) => "/assets/{name}",
        }
    }

    pub fn allowed(&self) -> &'static [&'static str] {
        match self {
            Route::Variants | Route::Humanizations => &["GET", "POST"],
            Route::Variant(_) => &["GET", "DELETE"],
            Route::HumanizationCancel(_) | Route::JobCancel(_) | Route::VariantImport => &["POST"],
            _ => &["GET"],
        }
    }

    pub fn endpoint(&self, method: &Method) -> Result<Endpoint, ApiError> {
        use Endpoint as E;
        let endpoint = match (self, method.as_str()) {
            (Route::Healthz, "GET") => E::Healthz,
            (Route::Readyz, "GET") => E::Readyz,
            (Route::Metrics, "GET") => E::Metrics,
            (Route::OpenApi, "GET") => E::OpenApi,
            (Route::Organization, "GET") => E::GetOrganization,
            (Route::Ledger, "GET") => E::ListLedger,
            (Route::Variants, "GET") => E::ListVariants,
            (Route::Variants, "POST") => E::CreateVariant,
            (Route::VariantImport, "POST") => E::ImportVariants,
            (Route::Variant(_), "GET") => E::GetVariant,
            (Route::Variant(_), "DELETE") => E::DeleteVariant,
            (Route::Humanizations, "GET") => E::ListHumanizations,
            (Route::Humanizations, "POST") => E::SubmitHumanization,
            (Route::Humanization(_), "GET") => E::GetHumanization,
            (Route::HumanizationCancel(_), "POST") => E::CancelHumanization,
            (Route::HumanizationExport(_), "GET") => E::ExportHumanization,
            (Route::Jobs, "GET") => E::ListJobs,
            (Route::Job(_), "GET") => E::GetJob,
            (Route::JobCancel(_), "POST") => E::CancelJob,
            (Route::WebPage, "GET") => E::WebPage,
            (Route::WebAsset(_), "GET") => E::WebAsset,
            _ => return Err(ApiError::MethodNotAllowed(self.allowed())),
        };
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_templates_and_refuses_other_paths() {
        assert_eq!(
            Route::resolve("/v1/jobs/abc/cancel"),
            Some(Route::JobCancel("abc".into()))
        );
        assert_eq!(Route::resolve("/v1/jobs/"), None);
        assert_eq!(Route::resolve("/v1/nope"), None);
        assert!(matches!(
            Route::Variants.endpoint(&Method::PUT),
            Err(ApiError::MethodNotAllowed(["GET", "POST"]))
        ));
    }
}
