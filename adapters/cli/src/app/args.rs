//! The command line, as clap derives it from these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Apply a spreadsheet of changes to many Genesys Cloud users at once.";

const LONG_ABOUT: &str = "\
Apply a spreadsheet of changes to many Genesys Cloud users at once: titles, departments,
managers, phones, e-mail addresses, states. gcbulk reads the users in batches, writes only what
differs (one PATCH per user, with the user's version, as Genesys requires), paces itself to the
rate limit the server announces, and records every user's before and after in a journal, so a
run that stops can be resumed and any run can be reverted.

Credentials come from --credentials FILE, or from the environment variables Genesys' own tools
use: GENESYSCLOUD_OAUTHCLIENT_ID, GENESYSCLOUD_OAUTHCLIENT_SECRET and GENESYSCLOUD_REGION. The
OAuth client needs the client-credentials grant and a role that may edit users. gcbulk never
prints the secret or the token.";

const EXAMPLES: &str = "\
Examples:
  Try everything on your own machine, against a built-in emulator of Genesys Cloud:
    gcbulk demo

  See what a sheet would change, without writing anything:
    gcbulk update reorg.csv --region eu-central-1 --dry-run

  Apply it, keeping a report:
    gcbulk update reorg.csv --region eu-central-1 --report reorg-report.json

  The run stopped (Ctrl-C, a crash, a daily limit)? Carry on where it stopped:
    gcbulk update reorg.csv --region eu-central-1 --resume

  Undo a run, leaving alone users someone else changed since:
    gcbulk revert reorg.csv.journal.jsonl

  Start a sheet from the organisation as it is:
    gcbulk export --region eu-central-1 --out users.csv

Exit codes: 0 every row applied (or nothing to do), 1 some rows not applied, 2 a usage or input
error, 3 the credentials were refused.";

const UPDATE_ABOUT: &str = "Apply a change file (CSV or JSON lines) to the users it names";

const UPDATE_LONG_ABOUT: &str = "\
Apply a change file to the users it names.

The file is a CSV with a header line, as the Genesys admin UI's bulk export writes it
(name,email,phone_work,extension,title,department,email_manager,...), optionally with an id
column; or JSON lines with the same names. A row names its user by id, else by e-mail. An empty
cell leaves the field as it is (see --clear-empty). Rows with errors are reported as
file:line: column: message and are not sent; the other rows still are.

Each row ends as updated, unchanged (the user already matched), rejected, not found, failed (the
server refused; the correlation id is reported) or gave up (no answer in time: --resume retries
it). The journal records each finished row as it happens. A row whose PATCH went out but whose
answer was lost (a crash, a kill, a cut connection) counts as updated by the interrupted run when
its user is found as the row asks, at the version that PATCH made.";

const UPDATE_EXAMPLES: &str = "\
Examples:
  gcbulk update reorg.csv --region us-east-1 --dry-run
  gcbulk update reorg.csv --domain mypurecloud.de --report report.json
  gcbulk update reorg.csv --region us-east-1 --resume
  gcbulk update changes.jsonl --api-base http://127.0.0.1:8080 --concurrency 4 --max-rate 3";

/// `--journal` as `gcbulk revert` uses it: see `revert::default_journal`.
const REVERT_JOURNAL_HELP: &str = "The revert's own journal [default: beside the journal it \
    reverts, .jsonl replaced by .revert.jsonl: X.journal.jsonl → X.journal.revert.jsonl]";

const SIM_LONG_ABOUT: &str = "\
Run gcbulk and ten retry strategies people use today (the seed tutorial's script, the Genesys
Java and Go SDKs, the Terraform provider, full jitter, AWS standard and adaptive, Heroku's
rate_throttle_client, a fixed 45-second sleep) on the same bulk update, against the same
simulated Genesys Cloud, in virtual time: a run of hours takes seconds, and the same seed gives
the same numbers on every machine. Only retry and pacing differ between the strategies.";

const SIM_EXAMPLES: &str = "\
Examples:
  gcbulk sim list
  gcbulk sim compare --scenario steady
  gcbulk sim compare --scenario storm --seed 2 --format json
  gcbulk sim compare --scenario shared --plot shared.svg
  gcbulk update reorg.csv --region us-east-1 --trace storm.json
  gcbulk sim compare --scenario storm.json";

const COMPARE_LONG_ABOUT: &str = "\
Run every strategy on one scenario and print, for each: the makespan (when its last client went
idle), its ratio to the lower bound (the least time the server's limits allow for the job),
requests sent, 429s and their share, rows not settled at the end, passes over the rows, the
median and 99th-percentile time an item spent, and Jain's fairness index across clients.

The scenario is a name from `gcbulk sim list`, a scenario file (JSON; every field has a default),
or a trace that `gcbulk update --trace` recorded, whose answers are then played back over the
steady scenario. A strategy that gives rows up re-runs them once the server's last Retry-After
has passed, as an operator would: at most 5 passes, none after a Retry-After over 180 s.";

/// `gcbulk`.
#[derive(Debug, Parser)]
#[command(
    name = "gcbulk",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = EXAMPLES,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,

    /// How much to say.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    #[command(about = UPDATE_ABOUT, long_about = UPDATE_LONG_ABOUT, after_long_help = UPDATE_EXAMPLES)]
    Update(UpdateArgs),

    /// Put back the values a run replaced, from its journal
    #[command(
        long_about = "Put back the values a run replaced, from its journal.\n\n\
        Every user the run updated gets the values it had before, written only if the user is \
        still at the version the run left it at: a user changed by someone else since is \
        reported as changed_since and left alone. The revert keeps a journal of its own, so it \
        can be resumed, and reverted in turn.",
        after_long_help = "Examples:\n  gcbulk revert reorg.csv.journal.jsonl --dry-run\n  \
        gcbulk revert reorg.csv.journal.jsonl --report revert.json",
        mut_arg("journal", |arg| arg.help(REVERT_JOURNAL_HELP))
    )]
    Revert(RevertArgs),

    /// Write the organisation's users as a CSV the update command reads back
    #[command(
        long_about = "Write the organisation's users as a CSV that `gcbulk update` reads back: \
        the admin UI's columns, then id. Edit it in a spreadsheet, keep the rows to change, and \
        apply it.\n\nGenesys lists at most 10,000 inactive users; past that the listing stops \
        with a warning and the users before it are written.",
        after_long_help = "Examples:\n  gcbulk export --region us-east-1 --out users.csv\n  \
        gcbulk export --region us-east-1 --state inactive > inactive.csv"
    )]
    Export(ExportArgs),

    /// Serve a local emulator of Genesys Cloud (users API, OAuth, rate limits, faults)
    #[command(
        long_about = "Serve a local emulator of Genesys Cloud on 127.0.0.1: the OAuth \
        client-credentials token, the users API (list, get, PATCH with version, search by \
        e-mail) and its rate limits, with optional faults. Point gcbulk, or any Genesys client, \
        at the URL it prints. Ctrl-C stops it.",
        after_long_help = "Examples:\n  gcbulk emulator --port 8080\n  \
        gcbulk emulator --org examples/org.jsonl --rate-limit 300 --time-scale 10 --faults storm"
    )]
    Emulator(EmulatorArgs),

    /// Run the sample reorganisation against an emulator started for it
    #[command(
        long_about = "Run the sample reorganisation (1,500 rows for an organisation of 2,000 \
        users) against an emulator of Genesys Cloud started on this machine for the purpose, \
        exactly as `gcbulk update` would against the real thing. The emulator's rate limit is a \
        Genesys minute compressed tenfold (3,000 requests a minute) with a short 429 storm, so \
        the pacing and the retries can be watched; it takes about half a minute."
    )]
    Demo(DemoArgs),

    /// Compare gcbulk's pacing with the retry strategies people use, in a simulated Genesys Cloud
    #[command(long_about = SIM_LONG_ABOUT, after_long_help = SIM_EXAMPLES)]
    Sim(SimArgs),
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// Say more: -v logs each request's troubles, -vv everything
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Print no progress bar and no summary; only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// Write the log to this file instead of the terminal
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) log_file: Option<PathBuf>,
}

/// Which Genesys Cloud organisation to talk to, and as whom.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Organisation and credentials")]
pub(crate) struct TargetArgs {
    /// The organisation's region, e.g. us-east-1, eu-central-1 [env: GENESYSCLOUD_REGION]
    #[arg(long, value_name = "REGION", group = "target")]
    pub(crate) region: Option<String>,

    /// The organisation's domain, e.g. mypurecloud.de (API at api.DOMAIN, login at login.DOMAIN)
    #[arg(long, value_name = "DOMAIN", group = "target")]
    pub(crate) domain: Option<String>,

    /// The API's base URL, e.g. http://127.0.0.1:8080 for the emulator (plain http: loopback only)
    #[arg(long, value_name = "URL", group = "target")]
    pub(crate) api_base: Option<String>,

    /// The login host's base URL, when --api-base is given [default: the --api-base URL]
    #[arg(long, value_name = "URL", requires = "api_base")]
    pub(crate) login_base: Option<String>,

    /// A file with client_id and client_secret (and optionally region), as KEY=VALUE or TOML
    #[arg(long, value_name = "FILE")]
    pub(crate) credentials: Option<PathBuf>,
}

/// How a run that writes goes.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Run")]
pub(crate) struct RunArgs {
    /// Read and compare, print what would change, write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// The journal to write [default: beside the input, INPUT.journal.jsonl]
    #[arg(long, value_name = "PATH")]
    pub(crate) journal: Option<PathBuf>,

    /// Carry on a run that stopped: skip the rows its journal shows finished, retry the rest
    #[arg(long)]
    pub(crate) resume: bool,

    /// Also write every row's outcome and the totals to this JSON file
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,

    /// Most requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: u16,

    /// Never send more than this many requests a second, whatever the server allows
    #[arg(long, value_name = "N", value_parser = positive_rate)]
    pub(crate) max_rate: Option<f64>,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            dry_run: false,
            journal: None,
            resume: false,
            report: None,
            concurrency: 8,
            max_rate: None,
        }
    }
}

/// `gcbulk update`.
#[derive(Clone, Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The change file: CSV (.csv) or JSON lines (.jsonl)
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// Let an empty cell (in JSON lines, null or "") clear the field (as the admin UI does)
    /// instead of leaving it alone
    #[arg(long)]
    pub(crate) clear_empty: bool,

    #[command(flatten)]
    pub(crate) target: TargetArgs,

    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Record each answer's time, status and headers to this JSON file, for
    /// `gcbulk sim compare --scenario FILE` to replay
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub(crate) trace: Option<PathBuf>,
}

/// `gcbulk revert`.
#[derive(Clone, Debug, Args)]
pub(crate) struct RevertArgs {
    /// The journal of the run to undo
    #[arg(value_name = "JOURNAL")]
    pub(crate) journal_to_revert: PathBuf,

    #[command(flatten)]
    pub(crate) target: TargetArgs,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Which users `gcbulk export` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum StateArg {
    /// Users who can sign in
    #[default]
    Active,
    /// Deactivated users (Genesys lists at most 10,000)
    Inactive,
    /// Both
    Any,
}

/// `gcbulk export`.
#[derive(Clone, Debug, Args)]
pub(crate) struct ExportArgs {
    /// Which users to list
    #[arg(long, value_enum, default_value_t = StateArg::Active)]
    pub(crate) state: StateArg,

    /// The CSV to write [default: standard output]
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,

    /// Most requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: u16,

    /// Never send more than this many requests a second
    #[arg(long, value_name = "N", value_parser = positive_rate)]
    pub(crate) max_rate: Option<f64>,

    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `gcbulk emulator`.
#[derive(Clone, Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// The organisation's users, one JSON user a line [default: the bundled sample org]
    #[arg(long, value_name = "FILE")]
    pub(crate) org: Option<PathBuf>,

    /// The port on 127.0.0.1 [default: a free one]
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,

    /// Requests a minute each OAuth client may make (Genesys: 300)
    #[arg(long, value_name = "N", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate_limit: u32,

    /// Emulated seconds per real second: 10 runs a rate-limit minute in 6 s
    #[arg(long, value_name = "K", default_value_t = 1.0, value_parser = positive_rate)]
    pub(crate) time_scale: f64,

    /// Misbehave: none, storm, flaky, editors, no-headers, endpoint-limit or daily-limit
    #[arg(long, value_name = "PRESET", default_value = "none")]
    pub(crate) faults: String,

    /// The OAuth client id to accept
    #[arg(
        long,
        value_name = "ID",
        default_value = "gcbulk-emulator",
        requires = "client_secret"
    )]
    pub(crate) client_id: String,

    /// The OAuth client secret to accept [default: emulator-secret]
    #[arg(long, value_name = "SECRET")]
    pub(crate) client_secret: Option<String>,

    /// The seed of the emulator's dice (faults, latency)
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// `gcbulk demo`.
#[derive(Clone, Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where to write the sample sheet, its journal and report [default: a new temporary folder]
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// `gcbulk sim`.
#[derive(Clone, Debug, Args)]
pub(crate) struct SimArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: SimCommand,
}

/// The subcommands of `gcbulk sim`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum SimCommand {
    /// List the named scenarios, with what each shows
    List,

    /// Run every strategy on a scenario and compare them side by side
    #[command(long_about = COMPARE_LONG_ABOUT, after_long_help = SIM_EXAMPLES)]
    Compare(SimCompareArgs),
}

/// `gcbulk sim compare`.
#[derive(Clone, Debug, Args)]
pub(crate) struct SimCompareArgs {
    /// A scenario name (see `gcbulk sim list`), a scenario file, or a trace from --trace
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) scenario: String,

    /// How to print the comparison
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub(crate) format: FormatArg,

    /// The seed of the simulated server's dice and of the strategies' jitter
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) seed: u64,

    /// Also draw each strategy's requests, 429s and progress over time to this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

/// How `gcbulk sim compare` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// A table for people
    #[default]
    Table,
    /// JSON for scripts: {"scenario", "seed", "lower_bound_s", "strategies": [...]}
    Json,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn one_target_at_a_time() {
        let parsed = Cli::try_parse_from([
            "gcbulk",
            "update",
            "x.csv",
            "--region",
            "us-east-1",
            "--domain",
            "a.b",
        ]);
        assert!(parsed.is_err());
        let parsed = Cli::try_parse_from(["gcbulk", "update", "x.csv", "--login-base", "http://x"]);
        assert!(parsed.is_err(), "--login-base needs --api-base");
    }

    /// The `--journal` text of a subcommand's `--help`.
    fn journal_help(subcommand: &str) -> String {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut(subcommand)
            .unwrap()
            .render_long_help()
            .to_string();
        // The paragraph under the option, as one line however the terminal wrapped it.
        let words: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.contains("--journal <PATH>"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        words.join(" ")
    }

    #[test]
    fn the_journal_help_names_the_default_each_command_uses() {
        use std::path::Path;

        let update = journal_help("update");
        assert!(update.contains("INPUT.journal.jsonl"), "{update}");
        assert_eq!(
            super::super::update::beside(Path::new("X"), ".journal.jsonl"),
            Path::new("X.journal.jsonl")
        );

        let revert = journal_help("revert");
        assert!(!revert.contains("INPUT"), "{revert}");
        assert!(
            revert.contains("X.journal.jsonl → X.journal.revert.jsonl"),
            "{revert}"
        );
        assert_eq!(
            super::super::revert::default_journal(Path::new("X.journal.jsonl")),
            Path::new("X.journal.revert.jsonl")
        );
    }

    #[test]
    fn rates_must_be_positive() {
        assert!(positive_rate("0").is_err());
        assert!(positive_rate("-2").is_err());
        assert!(positive_rate("nan").is_err());
        assert_eq!(positive_rate("2.5"), Ok(2.5));
    }
}
