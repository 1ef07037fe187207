//! Where the organisation is (region, domain or URL) and the OAuth client to log in with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use gcbulk_core::genesys::{Credentials, Secret};

use super::args::TargetArgs;
use super::{Failure, Ui};

/// The environment variable naming the OAuth client id, as Genesys' own tools spell it.
pub(crate) const ENV_CLIENT_ID: &str = "GENESYSCLOUD_OAUTHCLIENT_ID";
/// The environment variable holding the OAuth client secret.
pub(crate) const ENV_CLIENT_SECRET: &str = "GENESYSCLOUD_OAUTHCLIENT_SECRET";
/// The environment variable naming the region.
pub(crate) const ENV_REGION: &str = "GENESYSCLOUD_REGION";

/// Genesys Cloud's regions and their domains (API at `api.DOMAIN`, login at `login.DOMAIN`).
const REGIONS: [(&str, &str); 18] = [
    ("us-east-1", "mypurecloud.com"),
    ("us-east-2", "use2.us-gov-pure.cloud"),
    ("us-west-2", "usw2.pure.cloud"),
    ("ca-central-1", "cac1.pure.cloud"),
    ("eu-west-1", "mypurecloud.ie"),
    ("eu-west-2", "euw2.pure.cloud"),
    ("eu-central-1", "mypurecloud.de"),
    ("eu-central-2", "euc2.pure.cloud"),
    ("mx-central-1", "mxc1.pure.cloud"),
    ("ap-northeast-1", "mypurecloud.jp"),
    ("ap-northeast-2", "apne2.pure.cloud"),
    ("ap-northeast-3", "apne3.pure.cloud"),
    ("ap-south-1", "aps1.pure.cloud"),
    ("ap-southeast-1", "apse1.pure.cloud"),
    ("ap-southeast-2", "mypurecloud.com.au"),
    ("sa-east-1", "sae1.pure.cloud"),
    ("me-central-1", "mec1.pure.cloud"),
    ("eusc-de-east-1", "edee1.eusc-pure.cloud"),
];

/// The process environment, or a stand-in for it (the demo's, a test's).
#[derive(Clone, Debug, Default)]
pub(crate) struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// The variables gcbulk reads, from the process.
    pub(crate) fn from_process() -> Self {
        let vars = [ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REGION]
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
            .collect();
        Self { vars }
    }

    /// An environment holding exactly `vars`.
    pub(crate) fn with(vars: &[(&str, &str)]) -> Self {
        let vars = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self { vars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }
}

/// The API and login base URLs of one organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// e.g. `https://api.mypurecloud.de`.
    pub(crate) api_base: String,
    /// e.g. `https://login.mypurecloud.de`.
    pub(crate) login_base: String,
}

impl Target {
    /// The hosts of `domain`, once it is checked to be a bare DNS name; `option` names where it
    /// came from, for the message.
    fn from_domain(domain: &str, option: &str) -> Result<Self, Failure> {
        let domain = check_domain(domain, option)?;
        Ok(Self {
            api_base: format!("https://api.{domain}"),
            login_base: format!("https://login.{domain}"),
        })
    }

    fn from_region(region: &str, option: &str) -> Result<Self, Failure> {
        let region = region.trim().to_ascii_lowercase();
        // Older tools name the region by its domain.
        if region.contains('.') {
            return Self::from_domain(&region, option);
        }
        match REGIONS.iter().find(|(name, _)| *name == region) {
            Some((_, domain)) => Self::from_domain(domain, option),
            None => {
                let known: Vec<&str> = REGIONS.iter().map(|(name, _)| *name).collect();
                Err(Failure::usage(format!(
                    "unknown region {region:?}; known regions: {}",
                    known.join(", ")
                )))
            }
        }
    }
}

/// `domain` lowercased and without a trailing dot, refused unless it is a bare DNS name such as
/// `mypurecloud.de`: no scheme, path or port, and not the API or login host itself (those are
/// `api.DOMAIN` and `login.DOMAIN`). The message suggests the domain alone when it can see it.
fn check_domain(domain: &str, option: &str) -> Result<String, Failure> {
    let given = domain.trim();
    let domain = given.trim_end_matches('.').to_ascii_lowercase();
    if is_dns_name(&domain) && !is_service_host(&domain) {
        return Ok(domain);
    }
    if given.is_empty() {
        return Err(Failure::usage(format!(
            "{option} is empty: give the organisation's domain, e.g. mypurecloud.de, or its \
             region with --region, e.g. eu-central-1"
        )));
    }
    let bare = bare_domain(&domain);
    let hint = if REGIONS.iter().any(|(name, _)| *name == domain) {
        format!("{domain} is a region: give it with --region {domain}")
    } else if is_dns_name(&bare) && !is_service_host(&bare) {
        format!("give the domain alone: {bare}")
    } else {
        "give the domain alone, e.g. mypurecloud.de (API at api.DOMAIN, login at login.DOMAIN), \
         or a full URL with --api-base"
            .to_owned()
    };
    Err(Failure::usage(format!(
        "{option} {given:?} is not a domain name; {hint}"
    )))
}

/// What is left of a URL or host name once the scheme, credentials, port, path and an `api.` or
/// `login.` in front are taken off.
fn bare_domain(text: &str) -> String {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split(':').next().unwrap_or_default();
    let host = host.trim_matches('.');
    host.strip_prefix("api.")
        .or_else(|| host.strip_prefix("login."))
        .unwrap_or(host)
        .to_owned()
}

/// Whether `name` is a DNS name of two labels or more, each of letters, digits and inner hyphens.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

/// Whether `name` is already the API or login host of a domain.
fn is_service_host(name: &str) -> bool {
    name.starts_with("api.") || name.starts_with("login.")
}

/// What a command needs to reach and log in to an organisation.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    pub(crate) target: Target,
    pub(crate) credentials: Credentials,
}

/// Resolves the target and the credentials from the options, the credentials file and the
/// environment, in that order of precedence. `fallback` is a target to use when nothing names one
/// (a journal's, for revert).
pub(crate) fn connect(
    args: &TargetArgs,
    env: &Environment,
    fallback: Option<Target>,
    ui: &Ui,
) -> Result<Connection, Failure> {
    let file = match &args.credentials {
        Some(path) => Some(read_credentials_file(path, ui)?),
        None => None,
    };
    let target = if let Some(api_base) = &args.api_base {
        let api_base = check_base_url(api_base, "--api-base")?;
        let login_base = match &args.login_base {
            Some(login) => check_base_url(login, "--login-base")?,
            None => api_base.clone(),
        };
        Target {
            api_base,
            login_base,
        }
    } else if let Some(region) = &args.region {
        Target::from_region(region, "--region")?
    } else if let Some(domain) = &args.domain {
        Target::from_domain(domain, "--domain")?
    } else if let Some(target) = fallback {
        target
    } else if let (Some(region), Some(path)) = (
        file.as_ref().and_then(|f| f.region.as_deref()),
        &args.credentials,
    ) {
        Target::from_region(region, &format!("the region in {}", path.display()))?
    } else if let Some(region) = env.get(ENV_REGION) {
        Target::from_region(region, ENV_REGION)?
    } else {
        return Err(Failure::usage(format!(
            "no organisation given: use --region (e.g. us-east-1), --domain or --api-base, or \
             set {ENV_REGION}"
        )));
    };

    let (id, secret) = match file {
        Some(file) => (file.client_id, file.client_secret),
        None => (
            env.get(ENV_CLIENT_ID).map(str::to_owned),
            env.get(ENV_CLIENT_SECRET).map(Secret::new),
        ),
    };
    let source = match &args.credentials {
        Some(path) => format!("{} has no", path.display()),
        None => "the environment has no".to_owned(),
    };
    let Some(client_id) = id else {
        return Err(Failure::usage(format!(
            "{source} OAuth client id: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}, or give \
             --credentials FILE"
        )));
    };
    let Some(client_secret) = secret else {
        return Err(Failure::usage(format!(
            "{source} OAuth client secret: set {ENV_CLIENT_SECRET}, or give --credentials FILE"
        )));
    };
    Ok(Connection {
        target,
        credentials: Credentials {
            client_id,
            client_secret,
        },
    })
}

/// A base URL without its trailing slash, refused unless it is https, or http to loopback.
fn check_base_url(url: &str, option: &str) -> Result<String, Failure> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Failure::usage(format!("{option} {url:?} is not a URL like https://host"))
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = host_of(authority);
    if host.is_empty() || authority.contains('@') {
        return Err(Failure::usage(format!(
            "{option} {url:?} names no host (or carries credentials)"
        )));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(url.to_owned()),
        "http" if is_loopback(host) => Ok(url.to_owned()),
        "http" => Err(Failure::usage(format!(
            "{option} {url:?}: plain http is allowed only to this machine (the emulator); use \
             https"
        ))),
        _ => Err(Failure::usage(format!(
            "{option} {url:?}: only https (or http to this machine) is spoken"
        ))),
    }
}

/// The host of `host:port` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// What a credentials file holds.
struct CredentialsFile {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    region: Option<String>,
}

/// Reads `KEY=VALUE` lines, or TOML's `key = "value"` (sections are read past), naming a bad
/// line by its number but never quoting its value: it may be the secret.
fn read_credentials_file(path: &Path, ui: &Ui) -> Result<CredentialsFile, Failure> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| Failure::usage(format!("cannot read {shown}: {error}")))?;
    warn_if_readable_by_others(path, ui);

    let mut file = CredentialsFile {
        client_id: None,
        client_secret: None,
        region: None,
    };
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let line_no = index + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::usage(format!(
                "{shown}:{line_no}: expected KEY=VALUE"
            )));
        };
        let key = key.trim().trim_start_matches("export ").trim();
        let value = unquote(value.trim());
        match key.to_ascii_lowercase().as_str() {
            "client_id" | "clientid" | "id" | "genesyscloud_oauthclient_id" => {
                file.client_id = Some(value.to_owned());
            }
            "client_secret" | "clientsecret" | "secret" | "genesyscloud_oauthclient_secret" => {
                file.client_secret = Some(Secret::new(value));
            }
            "region" | "genesyscloud_region" => file.region = Some(value.to_owned()),
            _ => {
                return Err(Failure::usage(format!(
                    "{shown}:{line_no}: unknown key {key:?}; expected client_id, client_secret \
                     or region"
                )));
            }
        }
    }
    Ok(file)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, ui: &Ui) {
    use std::os::unix::fs::PermissionsExt;

    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        ui.warn(&format!(
            "{} can be read by other users of this machine; `chmod 600` it",
            path.display()
        ));
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &Ui) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TargetArgs {
        TargetArgs::default()
    }

    fn env() -> Environment {
        Environment::with(&[(ENV_CLIENT_ID, "id-1"), (ENV_CLIENT_SECRET, "s3cret")])
    }

    #[test]
    fn a_region_maps_to_its_hosts() {
        let args = TargetArgs {
            region: Some("eu-central-1".into()),
            ..args()
        };
        let connection = connect(&args, &env(), None, &Ui::silent()).unwrap();
        assert_eq!(connection.target.api_base, "https://api.mypurecloud.de");
        assert_eq!(connection.target.login_base, "https://login.mypurecloud.de");
        assert_eq!(connection.credentials.client_id, "id-1");
    }

    #[test]
    fn the_environment_region_and_a_domain_work_too() {
        let env = Environment::with(&[
            (ENV_CLIENT_ID, "id-1"),
            (ENV_CLIENT_SECRET, "s3cret"),
            (ENV_REGION, "ap-southeast-2"),
        ]);
        let connection = connect(&args(), &env, None, &Ui::silent()).unwrap();
        assert_eq!(connection.target.api_base, "https://api.mypurecloud.com.au");

        let args = TargetArgs {
            domain: Some("usw2.pure.cloud".into()),
            ..args()
        };
        let connection = connect(&args, &env, None, &Ui::silent()).unwrap();
        assert_eq!(
            connection.target.login_base,
            "https://login.usw2.pure.cloud"
        );
    }

    #[test]
    fn unknown_regions_and_missing_targets_are_usage_errors() {
        let args_region = TargetArgs {
            region: Some("mars-north-1".into()),
            ..args()
        };
        let error = connect(&args_region, &env(), None, &Ui::silent()).unwrap_err();
        assert!(error.to_string().contains("us-east-1"), "{error}");
        let error = connect(&args(), &env(), None, &Ui::silent()).unwrap_err();
        assert!(error.to_string().contains("--region"), "{error}");
    }

    #[test]
    fn every_region_maps_to_a_domain_that_passes_the_check() {
        for (region, domain) in REGIONS {
            let target = Target::from_region(region, "--region").unwrap();
            assert_eq!(target.api_base, format!("https://api.{domain}"));
            assert_eq!(target.login_base, format!("https://login.{domain}"));
            assert_eq!(Target::from_region(domain, "--region").unwrap(), target);
        }
        let target = Target::from_domain(" MyPureCloud.DE. ", "--domain").unwrap();
        assert_eq!(target.api_base, "https://api.mypurecloud.de");
    }

    #[test]
    fn a_domain_must_be_a_bare_dns_name() {
        let refused = |domain: &str| {
            let args = TargetArgs {
                domain: Some(domain.into()),
                ..args()
            };
            let error = connect(&args, &env(), None, &Ui::silent()).unwrap_err();
            assert_eq!(error.exit, super::super::Exit::Usage, "{domain}");
            error.to_string()
        };
        for domain in [
            "http://mypurecloud.de",
            "https://api.mypurecloud.de/",
            "api.mypurecloud.de",
            "login.mypurecloud.de",
            "mypurecloud.de:443",
            "mypurecloud.de/api/v2",
            "https://user@login.mypurecloud.de:8443/x",
        ] {
            let message = refused(domain);
            assert!(
                message.contains("give the domain alone: mypurecloud.de"),
                "{domain}: {message}"
            );
        }
        assert!(refused("").contains("--domain is empty"));
        assert!(refused("  ").contains("--domain is empty"));
        assert!(refused("eu-central-1").contains("--region eu-central-1"));
        for domain in ["mypurecloud", "my purecloud.de", "-x.de", "a..de", "ftp://"] {
            assert!(refused(domain).contains("e.g. mypurecloud.de"), "{domain}");
        }

        let env = Environment::with(&[
            (ENV_CLIENT_ID, "id-1"),
            (ENV_CLIENT_SECRET, "s3cret"),
            (ENV_REGION, "https://api.mypurecloud.ie"),
        ]);
        let error = connect(&args(), &env, None, &Ui::silent()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(ENV_REGION), "{message}");
        assert!(
            message.contains("give the domain alone: mypurecloud.ie"),
            "{message}"
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_base_url("http://127.0.0.1:8080/", "--api-base").is_ok());
        assert!(check_base_url("http://localhost:1", "--api-base").is_ok());
        assert!(check_base_url("http://[::1]:1", "--api-base").is_ok());
        assert!(check_base_url("http://10.0.0.1", "--api-base").is_err());
        assert!(check_base_url("https://api.example.com", "--api-base").is_ok());
        assert!(check_base_url("ftp://x", "--api-base").is_err());
        assert!(check_base_url("https://user:pw@x", "--api-base").is_err());
        assert_eq!(
            check_base_url("http://127.0.0.1:8080/", "--api-base").unwrap(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn a_credentials_file_reads_both_styles_and_never_quotes_values() {
        let dir = std::env::temp_dir().join(format!("gcbulk-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("creds");
        std::fs::write(
            &path,
            "# comment\n[genesys]\nclient_id = \"abc\"\nGENESYSCLOUD_OAUTHCLIENT_SECRET=xyz\n\
             region='eu-west-1'\n",
        )
        .unwrap();
        let args = TargetArgs {
            credentials: Some(path.clone()),
            ..args()
        };
        let connection = connect(&args, &Environment::default(), None, &Ui::silent()).unwrap();
        assert_eq!(connection.credentials.client_id, "abc");
        assert_eq!(connection.credentials.client_secret.expose(), "xyz");
        assert_eq!(connection.target.api_base, "https://api.mypurecloud.ie");

        std::fs::write(&path, "client_secret: hunter2\n").unwrap();
        let error = connect(&args, &Environment::default(), None, &Ui::silent()).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_credentials_name_the_variables() {
        let args = TargetArgs {
            region: Some("us-east-1".into()),
            ..args()
        };
        let error = connect(&args, &Environment::default(), None, &Ui::silent()).unwrap_err();
        assert!(error.to_string().contains(ENV_CLIENT_ID), "{error}");
    }
}
