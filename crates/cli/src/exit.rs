//! Exit codes, in one place. `idtoken --help` prints [`HELP`] and the
//! README lists the same. As with curl, `idtoken curl` uses curl's own
//! numbers for what it shares with curl, so scripts written for curl keep
//! working.

/// The command failed: no credentials, no token, a refused verification,
/// an unreachable endpoint.
pub(crate) const FAILURE: u8 = 1;
/// Bad arguments (clap's usage errors are 2 as well).
pub(crate) const USAGE: u8 = 2;
/// `curl`: the target could not be reached (curl's 7).
pub(crate) const CONNECT: u8 = 7;
/// `curl --fail`: the target answered 400 or more (curl's 22).
pub(crate) const HTTP_ERROR: u8 = 22;
/// `curl`: the body could not be written (curl's 23).
pub(crate) const WRITE: u8 = 23;
/// `curl --data @FILE`: the input could not be read (curl's 26).
pub(crate) const READ: u8 = 26;
/// `curl`: no answer in time (curl's 28).
pub(crate) const TIMEOUT: u8 = 28;
/// `curl`: the answer broke off (curl's 56).
pub(crate) const RECEIVE: u8 = 56;

/// The table `--help` ends with.
pub(crate) const HELP: &str = "Exit codes:
  0   success
  1   failure: no credentials, no token, a refused verification, an unreachable endpoint
  2   bad arguments
  7   curl: the target could not be reached
  22  curl --fail: the target answered 400 or more
  23  curl: the body could not be written
  26  curl --data @FILE: the input could not be read
  28  curl: no answer in time
  56  curl: the answer broke off";
