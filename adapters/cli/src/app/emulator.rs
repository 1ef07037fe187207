//! `gcbulk emulator`: the simulator's Genesys Cloud served on loopback, in the foreground.

use std::path::Path;

use gcbulk_sim::emulator::{EmulatorConfig, serve_blocking};
use gcbulk_sim::model::{
    FaultPreset, OAuthClient, ServerConfig, User, load_users_file, load_users_jsonl,
};

use super::args::EmulatorArgs;
use super::target::{ENV_CLIENT_ID, ENV_CLIENT_SECRET};
use super::{Exit, Failure, Ui};

/// The sample organisation: 2,000 users of a contact-centre company.
pub(crate) const SAMPLE_ORG: &[u8] = include_bytes!("../../../../examples/org.jsonl");

/// The sample organisation's users.
pub(crate) fn sample_org() -> Result<Vec<User>, Failure> {
    load_users_jsonl(SAMPLE_ORG)
        .map_err(|error| Failure::run(format!("the bundled sample org: {error}")))
}

/// Serves until Ctrl-C.
pub(crate) fn emulator(args: &EmulatorArgs, ui: &Ui) -> Result<Exit, Failure> {
    let (users, org) = match &args.org {
        Some(path) => {
            let users = load_users_file(path)
                .map_err(|error| Failure::usage(format!("{}: {error}", path.display())))?;
            (users, path.display().to_string())
        }
        None => (sample_org()?, "the sample org".to_owned()),
    };
    let preset: FaultPreset = args
        .faults
        .parse()
        .map_err(|error| Failure::usage(format!("--faults: {error}")))?;
    let mut server = ServerConfig::default().with_rate_limit_per_minute(args.rate_limit);
    preset.apply(&mut server);
    let secret_given = args.client_secret.is_some();
    server.clients = vec![OAuthClient {
        id: args.client_id.clone(),
        secret: args
            .client_secret
            .clone()
            .unwrap_or_else(|| OAuthClient::default().secret),
        token_lifetime_secs: None,
    }];
    let default_secret = server.clients[0].secret.clone();
    let user_count = users.len();
    let config = EmulatorConfig {
        server,
        users,
        seed: args.seed,
        port: args.port,
        time_scale: args.time_scale,
    };

    let stats = serve_blocking(config, |emulator| {
        let url = emulator.base_url();
        // A secret given on the command line is the user's to know; only the default is shown.
        let secret = if secret_given {
            "<the --client-secret given>".to_owned()
        } else {
            default_secret.clone()
        };
        // The sample sheet, where it is from here; else any sheet.
        let sample = Path::new("examples/reorg.csv");
        let sheet = if sample.is_file() {
            sample.display().to_string()
        } else {
            "SHEET.csv".to_owned()
        };
        ui.out(&format!(
            "Genesys Cloud emulator: {user_count} users from {org} at {url}\n  \
             {} requests a minute per OAuth client, time x{}, faults: {preset}\n\n\
             Point gcbulk (or any Genesys client) at it:\n  \
             export {ENV_CLIENT_ID}={}\n  \
             export {ENV_CLIENT_SECRET}={secret}\n  \
             gcbulk update {sheet} --api-base {url} --dry-run\n\n\
             Ctrl-C stops it; its users are kept in memory only.",
            args.rate_limit, args.time_scale, args.client_id
        ));
    })
    .map_err(|error| Failure::usage(error.to_string()))?;
    ui.note(&format!(
        "served {} requests, {} of them answered 429",
        stats.total(),
        stats.throttled
    ));
    Ok(Exit::Applied)
}
