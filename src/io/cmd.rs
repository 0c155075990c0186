//! Running the system tools (`ip`, `iptables`, `ip6tables`, `nft`) with an argv vector.

use std::io::Write;
use std::process::{Command, Stdio};

/// An argv vector: program first.
pub type Argv = Vec<String>;

/// Build an [`Argv`] from string slices.
pub fn argv(parts: &[&str]) -> Argv {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Run `argv` (with `input` on stdin if given) and return its stdout, or an error naming the
/// command and quoting its stderr.
pub fn run(argv: &[String], input: Option<&str>) -> Result<String, String> {
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // An early exit of the child shows up in its status below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Run and log at debug level; return only success or the error text.
pub fn run_logged(argv: &[String], input: Option<&str>) -> Result<(), String> {
    log::debug!("exec: {}", argv.join(" "));
    run(argv, input).map(drop)
}

/// Whether a program can be found in `PATH`.
pub fn exists(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// One change to the system and the commands that take it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub apply: Argv,
    /// Text for the command's stdin (`nft -f -`).
    pub input: Option<String>,
    /// Run in this order to undo `apply`.
    pub undo: Vec<Argv>,
}

impl Step {
    pub fn new(apply: Argv, undo: Vec<Argv>) -> Step {
        Step {
            apply,
            input: None,
            undo,
        }
    }
}

/// The undo list of changes made to the system; undone (last first) by [`Installed::undo`] or
/// on drop.
#[derive(Debug, Default)]
pub struct Installed {
    what: &'static str,
    undo: Vec<Undo>,
}

/// One entry of the undo list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Run these commands in order.
    Run(Vec<Argv>),
    /// iptables-nft creates the nftables table `FAMILY raw` on first use and leaves it behind:
    /// delete it if it holds no rule and no chain but the built-in ones (`iptables-save -t raw`
    /// of `SAVE` shows none).
    DropEmptyRawTable {
        save: &'static str,
        family: &'static str,
    },
}

fn undo_one(u: Undo, what: &str) {
    match u {
        Undo::Run(cmds) => {
            for c in cmds {
                if let Err(e) = run_logged(&c, None) {
                    log::warn!("{what}: cleanup: {e}");
                }
            }
        }
        Undo::DropEmptyRawTable { save, family } => {
            let Ok(text) = run(&argv(&[save, "-t", "raw"]), None) else {
                return;
            };
            let only_builtin = text.lines().all(|l| {
                !l.starts_with("-A")
                    && (!l.starts_with(':')
                        || l.starts_with(":PREROUTING ")
                        || l.starts_with(":OUTPUT "))
            });
            if only_builtin {
                let _ = run_logged(&argv(&["nft", "delete", "table", family, "raw"]), None);
            }
        }
    }
}

impl Installed {
    /// Apply `steps` in order; if one fails, undo those already applied and return its error.
    /// `first` are undo entries for side effects of the steps that must be undone last.
    pub fn apply(
        what: &'static str,
        first: Vec<Undo>,
        steps: Vec<Step>,
    ) -> Result<Installed, String> {
        let mut done = Installed { what, undo: first };
        for step in steps {
            if let Err(e) = run_logged(&step.apply, step.input.as_deref()) {
                done.undo();
                return Err(format!("{what}: {e}"));
            }
            done.undo.push(Undo::Run(step.undo));
        }
        Ok(done)
    }

    /// Take back every change, last first. Failures are logged, not fatal.
    pub fn undo(&mut self) {
        while let Some(u) = self.undo.pop() {
            undo_one(u, self.what);
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.undo();
    }
}

/// Run commands that remove leftovers of an earlier run; failures (nothing to remove) are
/// expected and ignored. Each is repeated while it succeeds (at most 16 times).
pub fn remove_stale(cmds: &[Argv]) {
    for c in cmds {
        for _ in 0..16 {
            if run(c, None).is_err() {
                break;
            }
            log::info!("removed a leftover of an earlier run: {}", c.join(" "));
        }
    }
}
