//! What `mip install` asks a board before it installs: which `.mpy`
//! files it loads and where its libraries go.

use super::Board;
use crate::error::{Error, Result};

/// One short program: the `.mpy` version (`sys.implementation._mpy`'s
/// low byte, 0 where the firmware loads none) and the `sys.path` entries
/// ending in `/lib`, as mip looks for them.
pub const FACTS: &str = "import sys\n\
print(getattr(sys.implementation,'_mpy',0)&255)\n\
print('|'.join(p for p in sys.path if p.endswith('/lib')))\n";

/// What `FACTS` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub mpy: Option<u32>,
    /// The first `sys.path` entry ending in `/lib`, if any.
    pub lib: Option<String>,
}

impl Facts {
    pub fn parse(out: &[u8]) -> Result<Facts> {
        let text = String::from_utf8_lossy(out);
        let mut lines = text.lines().map(str::trim);
        let mpy = lines
            .next()
            .and_then(|l| l.parse::<u32>().ok())
            .ok_or_else(|| {
                Error::Answer(crate::error::Unexpected::NoMpyVersion {
                    answer: text.to_string(),
                })
            })?;
        let lib = lines
            .next()
            .and_then(|l| l.split('|').next())
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        Ok(Facts {
            mpy: Some(mpy).filter(|&m| m > 0),
            lib,
        })
    }
}

impl Board {
    pub async fn package_facts(&self) -> Result<Facts> {
        let out = self.exec(FACTS).await?;
        if !out.stderr.is_empty() {
            return Err(Error::Traceback(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Facts::parse(&out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_the_two_lines() {
        let f = Facts::parse(b"6\r\n/lib|/flash/lib\r\n").unwrap();
        assert_eq!(f.mpy, Some(6));
        assert_eq!(f.lib.as_deref(), Some("/lib"));
        let f = Facts::parse(b"0\r\n\r\n").unwrap();
        assert_eq!((f.mpy, f.lib), (None, None));
        assert!(Facts::parse(b"").is_err());
    }
}
