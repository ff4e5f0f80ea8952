//! The process's command line with `--config`: `[server]` settings fill in what neither the command line
//! nor the environment set (command line > environment > file > default), and `[scopes]` go under
//! `--scope-description` (a flag's description of a scope wins).

use std::ffi::OsString;

use clap::FromArgMatches;
use clap::parser::ValueSource;

use super::{Declaration, Problems, read};
use crate::config::{Cli, Command, ConfigCommand, KeysCommand, ServeConfig};

/// Why a command line cannot run.
#[derive(Debug)]
pub enum Refusal {
    /// clap's own error (usage, exit 2).
    Usage(clap::Error),
    /// The configuration file's lines (exit 1).
    File(Problems),
}

/// Parses `args` with `command` (`Cli::command()`, or one without environment in tests), then reads the
/// `--config` file, if any, with `env` for its variables. For `serve`, the file's `[server]` settings are
/// added as flags where the command line and the environment left a setting at its default.
pub fn parse(
    command: clap::Command,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Cli, Option<Declaration>), Refusal> {
    let matches = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(Refusal::Usage)?;
    let cli = Cli::from_arg_matches(&matches).map_err(Refusal::Usage)?;
    // `keys generate-kek` needs nothing configured (it may be what fixes the configuration), and `config
    // check` reads the file it names.
    let reads_config = !matches!(
        cli.command,
        Command::Keys(KeysCommand::GenerateKek) | Command::Config(ConfigCommand::Check { .. })
    );
    let Some(path) = cli.config.clone().filter(|_| reads_config) else {
        return Ok((cli, None));
    };
    let declaration = read(&path, env).map_err(Refusal::File)?;
    let Some(serve_matches) = matches.subcommand_matches("serve") else {
        return Ok((cli, Some(declaration)));
    };
    let serve = ServeConfig::command();
    let mut added = Vec::new();
    for setting in &declaration.server {
        let Some(arg) = serve
            .get_arguments()
            .find(|arg| arg.get_long() == Some(setting.flag.as_str()))
        else {
            continue;
        };
        if matches!(
            serve_matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        if setting.switch {
            added.push(OsString::from(format!("--{}", setting.flag)));
        }
        for value in &setting.values {
            // `--flag=value`: a value starting with '-' stays a value.
            added.push(OsString::from(format!("--{}={value}", setting.flag)));
        }
    }
    let mut cli = if added.is_empty() {
        cli
    } else {
        // `serve` takes no positional arguments, so flags appended at the end are serve's.
        let mut all = args;
        all.extend(added);
        // The file's settings were each checked alone; together with the command line they may still not
        // go (a flag the file sets conflicting with one given): said as the file's problem.
        let as_file_problem = |error: clap::Error| {
            let text = error.to_string();
            let reason = text.lines().next().unwrap_or("invalid settings");
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            Refusal::File(Problems(vec![format!(
                "{}: [server]: {reason}",
                path.display()
            )]))
        };
        let matches = command.try_get_matches_from(all).map_err(as_file_problem)?;
        Cli::from_arg_matches(&matches).map_err(as_file_problem)?
    };
    if let Command::Serve(serve) = &mut cli.command {
        let mut scopes = declaration.scopes.clone();
        scopes.append(&mut serve.scope_descriptions);
        serve.scope_descriptions = scopes;
    }
    Ok((cli, Some(declaration)))
}
