//! What the CLI reads from people: secret values (never from argv unless
//! insisted on), confirmations before destructive verbs, and times shown
//! the human way.

use anyhow::{Context as _, bail};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;

/// Longest value read from stdin or a file: the registry's cap on a
/// variable (64 KiB) plus room for it to say so itself.
const MAX_VALUE_BYTES: u64 = (64 << 10) + 1;

/// A secret's value: from `file`, else a hidden prompt on a terminal, else
/// stdin. One trailing newline (what `echo` and editors add) is dropped.
pub fn secret_value(name: &str, file: Option<&Path>) -> anyhow::Result<String> {
    let raw = match file {
        Some(path) => {
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_VALUE_BYTES).read_to_string(&mut text))
                .with_context(|| format!("reading the value of {name} from {}", path.display()))?;
            text
        }
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("value of {name} (input hidden): "))
                .context("reading the value from the terminal")?
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_VALUE_BYTES)
                .read_to_string(&mut text)
                .with_context(|| format!("reading the value of {name} from stdin (UTF-8 text)"))?;
            text
        }
    };
    let value = trim_one_newline(&raw);
    if value.is_empty() {
        bail!(
            "no value for {name}: pipe it in (`printf %s VALUE | verge secret set APP {name}`), type it at the prompt, or pass --file"
        );
    }
    Ok(value.to_owned())
}

/// `text` without one trailing `\n` or `\r\n`.
pub fn trim_one_newline(text: &str) -> &str {
    text.strip_suffix('\n')
        .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t))
}

/// Asks before `what` on a terminal (anything but `y`/`yes` declines);
/// `yes` skips the question; without a terminal it refuses, naming `--yes`.
pub fn confirm(what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}: refusing without a terminal to ask on; pass --yes to confirm");
    }
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => bail!("{what}: not confirmed; nothing changed"),
    }
}

/// `secs` (Unix time) as "3 min ago", "2 h ago", "5 days ago" from `now`.
pub fn ago(secs: u64, now: u64) -> String {
    let d = now.saturating_sub(secs);
    match d {
        0..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86_399 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped() {
        assert_eq!(trim_one_newline("s3cret\n"), "s3cret");
        assert_eq!(trim_one_newline("s3cret\r\n"), "s3cret");
        assert_eq!(trim_one_newline("s3cret\n\n"), "s3cret\n");
        assert_eq!(trim_one_newline("s3cret"), "s3cret");
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(100, 130), "30 s ago");
        assert_eq!(ago(100, 100 + 180), "3 min ago");
        assert_eq!(ago(0, 7200), "2 h ago");
        assert_eq!(ago(0, 3 * 86_400), "3 days ago");
        assert_eq!(ago(200, 100), "0 s ago");
    }
}
