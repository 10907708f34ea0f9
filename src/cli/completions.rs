//! `gan-run completions SHELL`: clap_complete's script for the shell, and for bash two things
//! on top. The repair: clap_complete (4.6) names a subcommand's state `gan__run__subcmd__X`
//! where it sets it but `gan__subcmd__run__subcmd__X` in the case labels that complete it (the
//! hyphen of `gan-run` is replaced once by `__`, once by `__subcmd__`), so no subcommand's
//! options completed. The additions, which clap cannot know: config keys (a fixed list read
//! off the config's types, `config::keys`) after `--set` and as `KEY=VALUE` arguments, and run
//! directories where a command takes runs.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// The subcommands whose positional arguments are run directories (or folders of runs).
const RUN_COMMANDS: &[&str] = &[
    "diff", "compare", "report", "sample", "eval", "export", "ls",
];

/// The subcommands whose positional arguments are config files and `KEY=VALUE` overrides.
const CONFIG_COMMANDS: &[&str] = &["train", "check", "bench", "sweep"];

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "gan-run", &mut out);
    let script = String::from_utf8(out).expect("clap_complete writes UTF-8");
    match shell {
        Shell::Bash => bash(&script),
        _ => script,
    }
}

/// clap_complete's bash script, repaired, with the additions after it.
fn bash(script: &str) -> String {
    let repaired = script.replace("gan__subcmd__run__subcmd__", "gan__run__subcmd__");
    let keys = crate::config::keys::schema_keys().join(" ");
    // Options that take a value (whose value clap's part completes, as files or nothing).
    let mut valued: Vec<String> = Cli::command()
        .get_subcommands()
        .flat_map(|c| c.get_arguments().cloned().collect::<Vec<_>>())
        .filter(|a| a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .filter(|l| l != "--set")
        .collect();
    valued.sort();
    valued.dedup();
    format!(
        "{repaired}\n{}",
        EXTRAS
            .replace("@KEYS@", &keys)
            .replace("@VALUED@", &valued.join(" "))
            .replace("@RUN_COMMANDS@", &RUN_COMMANDS.join("|"))
            .replace("@CONFIG_COMMANDS@", &CONFIG_COMMANDS.join("|"))
    )
}

/// The bash additions: a function that asks clap's, then completes keys and run directories.
const EXTRAS: &str = r#"# gan-run's additions: config keys after --set and as KEY=VALUE, run directories.
_gan_run_keys="@KEYS@"
_gan_run_valued=" @VALUED@ "

_gan_run_complete_keys() {
    COMPREPLY=( $(compgen -W "${_gan_run_keys}" -S "=" -- "$1") )
    compopt -o nospace 2>/dev/null
}

_gan_run() {
    _gan__run "$@"
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" sub="" i
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case "${COMP_WORDS[i]}" in
            -m|--multirun) sub=sweep; break ;;
            -*) ;;
            *) sub="${COMP_WORDS[i]}"; break ;;
        esac
    done
    # `gan-run CONFIG ...` is `gan-run train CONFIG ...`.
    if [[ "${sub}" == *.toml || ( -n "${sub}" && -f "${sub}" ) ]]; then
        sub=train
    fi
    if [[ "${prev}" == "--set" ]]; then
        _gan_run_complete_keys "${cur}"
        return 0
    fi
    if [[ "${cur}" == -* || "${_gan_run_valued}" == *" ${prev} "* ]]; then
        return 0
    fi
    case "${sub}" in
        @CONFIG_COMMANDS@)
            if [[ -n "${cur}" && "${cur}" != */* && "${cur}" != *=* ]]; then
                local files=( $(compgen -f -- "${cur}") )
                _gan_run_complete_keys "${cur}"
                COMPREPLY+=( "${files[@]}" )
            fi
            ;;
        @RUN_COMMANDS@)
            local base="${cur}"
            if [[ -z "${base}" && -d runs ]]; then
                base="runs/"
            fi
            COMPREPLY=( $(compgen -d -- "${base}") )
            compopt -o filenames 2>/dev/null
            ;;
    esac
    return 0
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _gan_run -o nosort -o bashdefault -o default gan-run
else
    complete -F _gan_run -o bashdefault -o default gan-run
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state clap's bash script sets has a case label that completes it.
    #[test]
    fn every_state_the_bash_script_sets_has_its_case() {
        let s = script(Shell::Bash);
        for line in s.lines().map(str::trim) {
            if let Some(state) = line
                .strip_prefix("cmd=\"")
                .and_then(|r| r.strip_suffix('"'))
            {
                assert!(s.contains(&format!("{state})")), "no case for {state}");
            }
        }
        assert!(s.contains("gan__run__subcmd__compare)"));
        assert!(!s.contains("gan__subcmd__run"));
        assert!(s.contains("optimizer.generator.beta1"));
        let valued = s
            .lines()
            .find(|l| l.starts_with("_gan_run_valued="))
            .unwrap();
        assert!(
            valued.contains(" --runs-dir ") && !valued.contains(" --set "),
            "{valued}"
        );
    }
}
