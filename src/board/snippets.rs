//! The MicroPython programs the board runs for us, and their answers.
//!
//! Every snippet is small (it crosses a slow link and is compiled in a few
//! KB of RAM), streams its answer a line at a time, and never raises: an
//! OSError comes back as a line `E <errno>`. Paths travel as escaped byte
//! literals and come back hex-encoded, so no name is ever spliced into code
//! and a name with a newline in it cannot break a line.

use crate::error::{Error, Result};
use crate::protocol::ProtocolError;

/// `path` as a Python expression: `b'\x2f...'.decode()`. Only characters
/// that cannot end or escape the literal are left as they are.
pub fn lit(path: &str) -> String {
    format!("{}.decode()", bytes_lit(path))
}

/// `text` as a Python bytes literal, escaped as [`lit`] does.
pub fn bytes_lit(text: &str) -> String {
    let mut s = String::from("b'");
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"._/- ".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('\'');
    s
}

/// One OSError-catching call: prints `K` on success.
pub fn call(func: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| lit(a)).collect();
    format!(
        "import os\ntry:\n os.{func}({})\n print('K')\nexcept OSError as e:\n print('E',e.args[0])\n",
        args.join(",")
    )
}

pub fn stat(path: &str) -> String {
    format!(
        "import os\ntry:\n s=os.stat({})\n print('S',s[0],s[6],s[8])\nexcept OSError as e:\n print('E',e.args[0])\n",
        lit(path)
    )
}

/// Lists `top` (and below it, if `deep`) without recursion: a stack of
/// directory names is all the board holds in RAM.
pub fn walk(top: &str, deep: bool) -> String {
    format!(
        "import os,binascii
def H(s):return binascii.hexlify(s.encode()).decode()
t=[{top}]
while t:
 d=t.pop()
 try:it=os.ilistdir(d)
 except OSError as e:
  print('E',e.args[0],H(d));continue
 for e in it:
  p=d.rstrip('/')+'/'+e[0]
  try:
   s=os.stat(p);z=s[6];m=s[8]
  except OSError:
   z=e[3] if len(e)>3 else 0;m=0
  k='D' if e[1]&0x4000 else 'F'
  print(k,z,m,H(p))
  if {deep} and k=='D':t.append(p)
print('K')
",
        top = lit(top),
        deep = if deep { "1" } else { "0" }
    )
}

/// `mkdir -p` of each directory, refusing to walk through a file. Answers
/// `K`, or `E <errno> <hex of the directory>` for the first that fails.
pub fn mkdirs(paths: &[&str]) -> String {
    let list: Vec<String> = paths.iter().map(|p| lit(p)).collect();
    format!(
        "import os,binascii
def M(p):
 q=''
 for c in p.split('/'):
  if not c:continue
  q+='/'+c
  try:os.mkdir(q)
  except OSError as e:
   if e.args[0]!=17:return e.args[0]
   try:
    if not os.stat(q)[0]&0x4000:return 20
   except OSError as e:return e.args[0]
 return 0
for p in [{}]:
 r=M(p)
 if r:
  print('E',r,binascii.hexlify(p.encode()).decode());break
else:print('K')
",
        list.join(",")
    )
}

/// Each file's state against what we have: `N` (missing), `S` (another
/// size) or `H <digest>` (same size: its hash), after `A <algorithm>`:
/// sha256 where the firmware has it, else crc32. 512-byte pieces: the
/// board never holds a file whole. Calls `_wrm_alg` and `_wrm_h` (see
/// [`HELPERS`]), as `_wrm_hs` does for a list sent as a file.
pub fn hashes(files: &[(&str, u64)]) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|(p, n)| format!("({},{n})", lit(p)))
        .collect();
    format!(
        "A=_wrm_alg();print('A',A)\nfor p,n in [{}]:_wrm_h(A,p,n)\nprint('K')\n",
        list.join(",")
    )
}

/// Functions the hot snippets call, defined in the board's REPL globals
/// once per boot: each upload then costs a program short enough to travel
/// with its raw-paste request in one round trip.
///
/// `_wrm_fin(part, target, size, base)` checks that the uploaded part has the
/// size sent; then that the target is still `base` (None: no check; `()`:
/// absent; `(size, mtime)`: unchanged or gone) and renames the part onto it
/// (`K <mtime>`), or, if the target changed, beside it as
/// `NAME.webrepl-mount-conflict` (`C <mtime> <target size> <target mtime>`).
/// On a short part it removes it
/// and reports the size kept and the free space (`Z`), which tells a full
/// flash from lost bytes.
///
/// `_wrm_go(crc, [(part, target, size, base, pieces, slice)])` finishes a
/// batch: first it checks the size of each slice of a big file (`PART`,
/// `PART.1`...: see `upload.rs`), reporting short ones as `P <free> <index>...`
/// (to be sent again, nothing joined), joins them, and takes the CRC-32 of
/// every part; only
/// if the CRC of them all, end to end, is `crc` does it `_wrm_fin` them.
/// Else it renames none and prints `V <crc>` for each (a short one gets its
/// `_wrm_fin` answer), so that the files the board got wrong are sent again
/// and only they. Firmware can take other bytes than those sent as file
/// data and keep the size (see `session/binary.rs`, `mid_put`). A board
/// without `binascii.crc32` checks sizes only. `_wrm_fd(dir, [(name, id,
/// size, base)])` is the list for one directory, its parts named by id.
///
/// `_wrm_r(path)` prints a file as base64 in 384-byte pieces (`F`, lines,
/// `.`), or `E <errno>`: see [`read_files`].
pub const HELPERS: &str = "import os,binascii
def _wrm_r(p):
 try:f=open(p,'rb')
 except OSError as e:
  print('E',e.args[0]);return
 print('F')
 while 1:
  b=f.read(384)
  if not b:break
  print(binascii.b2a_base64(b).decode(),end='')
 f.close();print('.')
def _wrm_fin(P,T,n,b):
 try:
  z=os.stat(P)[6]
  if z!=n:
   os.remove(P);v=os.statvfs('/');print('Z',z,v[0]*v[4]);return
  if b is not None:
   try:s=os.stat(T);c=(s[6],s[8])
   except OSError:c=b
   if c!=b:
    C=T+'.webrepl-mount-conflict'
    try:os.remove(C)
    except OSError:pass
    os.rename(P,C);print('C',os.stat(C)[8],*c);return
  try:os.rename(P,T)
  except OSError:
   os.remove(T);os.rename(P,T)
  print('K',os.stat(T)[8])
 except OSError as e:
  print('E',e.args[0])
def _wrm_l(L,n):
 try:
  f=open(L,'rb');d=f.read();f.close();os.remove(L)
 except OSError as e:
  print('E',e.args[0]);return []
 if len(d)!=n:
  print('E',5);return []
 return d.decode().split('\0')
def _wrm_fd(d,L):
 return [(d+'.wrm-'+i,d+t,n,b,0,0) for t,i,n,b in L]
def _wrm_j(P,k,s,n):
 N=[P]+[P+'.'+str(i) for i in range(1,k+1)];Z=[]
 for Q in N:
  try:Z.append(os.stat(Q)[6])
  except OSError:Z.append(-1)
 if Z[0]==n and max(Z[1:])<0:return []
 B=[i for i in range(k+1) if Z[i]!=(s if i<k else n-k*s)]
 if B:return B
 m=bytearray(512);f=open(P,'ab')
 for Q in N[1:]:
  g=open(Q,'rb')
  while 1:
   r=g.readinto(m)
   if not r:break
   f.write(memoryview(m)[:r])
  g.close();os.remove(Q)
 f.close();return []
def _wrm_go(c,Q):
 C=getattr(binascii,'crc32',None);R=[];x=0;a=1
 for P,T,n,b,k,s in Q:
  h=None
  try:
   if k:
    B=_wrm_j(P,k,s,n)
    if B:
     R.append(B);a=0;continue
   if C and os.stat(P)[6]==n:
    h=0;m=bytearray(512);f=open(P,'rb')
    while 1:
     r=f.readinto(m)
     if not r:break
     v=memoryview(m)[:r];h=C(v,h);x=C(v,x)
    f.close()
  except OSError:h=None
  if h is None:a=0
  R.append(h)
 a=a and x&0xffffffff==c
 for (P,T,n,b,k,s),h in zip(Q,R):
  if type(h) is list:v=os.statvfs('/');print('P',v[0]*v[4],*h)
  elif C and not a and h is not None:print('V %08x'%(h&0xffffffff))
  else:_wrm_fin(P,T,n,b)
def _wrm_alg():
 try:
  import hashlib;hashlib.sha256;return 'sha256'
 except (ImportError,AttributeError):
  return 'crc32'
def _wrm_h(A,p,n):
 try:s=os.stat(p)
 except OSError:
  print('N');return
 if s[6]!=n:
  print('S');return
 f=open(p,'rb');c=0
 if A=='sha256':
  import hashlib;h=hashlib.sha256()
 else:h=None
 while 1:
  b=f.read(512)
  if not b:break
  if h:h.update(b)
  else:c=binascii.crc32(b,c)
 f.close()
 print('H',binascii.hexlify(h.digest()).decode() if h else '%08x'%(c&0xffffffff))
def _wrm_hs(L,n):
 r=_wrm_l(L,n)
 if not r:return
 A=_wrm_alg();print('A',A)
 for i in range(0,len(r)-1,2):_wrm_h(A,r[i],int(r[i+1]))
 print('K')
";

/// Records for `_wrm_hs`: fields ended by NUL, which no
/// board name holds. The list goes to the board as a file, by binary PUT:
/// a batch's program is then one short line, not kilobytes of code that
/// the raw-paste window lets through 128 bytes per round trip.
pub fn records<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(f.as_bytes());
        out.push(0);
    }
    out
}

/// One upload to finish: its part file, target, size, the Python check of
/// the target, its CRC-32, and how many slices follow the first.
#[derive(Debug, Clone)]
pub struct Finishing {
    pub part: String,
    pub target: String,
    pub size: u64,
    pub base: String,
    pub crc: u32,
    pub pieces: usize,
    /// The size of each slice but the last.
    pub slice: u64,
}

impl Finishing {
    /// The upload of `data` from `part` onto `target`.
    pub fn new(
        part: &str,
        target: &str,
        data: &[u8],
        base: String,
        pieces: usize,
        slice: usize,
    ) -> Self {
        Finishing {
            part: part.to_string(),
            target: target.to_string(),
            size: data.len() as u64,
            base,
            crc: crc32fast::hash(data),
            pieces,
            slice: slice as u64,
        }
    }
}

/// The `_wrm_go` call (see [`HELPERS`]) that finishes a batch of uploads,
/// one answer line each. The program travels through the raw-paste window
/// (128 bytes a round trip), so it is kept short: uploads into one
/// directory share one `_wrm_fd` list that names each by its file name and
/// part number, and one CRC covers the whole batch.
pub fn finish_uploads(calls: &[Finishing]) -> String {
    let mut lists: Vec<String> = Vec::new();
    let mut group: Option<(&str, String)> = None;
    let end = |group: &mut Option<(&str, String)>, lists: &mut Vec<String>| {
        if let Some((dir, items)) = group.take() {
            lists.push(format!("_wrm_fd({},[{items}])", short_lit(dir)));
        }
    };
    for f in calls {
        let dir = &f.target[..f.target.rfind('/').map_or(0, |i| i + 1)];
        let id = f
            .part
            .strip_prefix(dir)
            .and_then(|p| p.strip_prefix(super::PART_PREFIX))
            .filter(|id| !id.contains('/') && f.pieces == 0);
        let Some(id) = id else {
            end(&mut group, &mut lists);
            lists.push(format!(
                "[({},{},{},{},{},{})]",
                lit(&f.part),
                lit(&f.target),
                f.size,
                f.base,
                f.pieces,
                f.slice
            ));
            continue;
        };
        if group.as_ref().is_some_and(|(d, _)| *d != dir) {
            end(&mut group, &mut lists);
        }
        let (_, items) = group.get_or_insert_with(|| (dir, String::new()));
        items.push_str(&format!(
            "({},{},{},{}),",
            short_lit(&f.target[dir.len()..]),
            short_lit(id),
            f.size,
            f.base
        ));
    }
    end(&mut group, &mut lists);
    format!("_wrm_go({},{})\n", combined_crc(calls), lists.join("+"))
}

/// The CRC-32 of the calls' files end to end, as `_wrm_go` takes it.
fn combined_crc(calls: &[Finishing]) -> u32 {
    let mut all = crc32fast::Hasher::new();
    for f in calls {
        all.combine(&crc32fast::Hasher::new_with_initial_len(f.crc, f.size));
    }
    all.finalize()
}

/// A Python literal of `text`: plain quotes when it is plain, else [`lit`].
fn short_lit(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._/- ".contains(&b))
    {
        format!("'{text}'")
    } else {
        lit(text)
    }
}

/// Removes the files named, whether or not they exist.
pub fn remove_all(paths: &[&str]) -> String {
    let list: Vec<String> = paths.iter().map(|p| lit(p)).collect();
    format!(
        "import os\nfor p in [{}]:\n try:os.remove(p)\n except OSError:pass\nprint('K')\n",
        list.join(",")
    )
}

/// `rmdir` of a directory that may hold nothing but our part files.
pub fn rmdir(path: &str) -> String {
    format!(
        "import os
d={}
try:
 for e in os.ilistdir(d):
  if e[0].startswith('.wrm-'):os.remove(d+'/'+e[0])
 os.rmdir(d);print('K')
except OSError as e:
 print('E',e.args[0])
",
        lit(path)
    )
}

/// `os.rename`, replacing an existing target on filesystems whose rename
/// refuses to.
pub fn rename(from: &str, to: &str) -> String {
    format!(
        "import os
try:
 try:os.rename({a},{b})
 except OSError as e:
  if e.args[0]!=17:raise
  os.remove({b});os.rename({a},{b})
 print('K')
except OSError as e:
 print('E',e.args[0])
",
        a = lit(from),
        b = lit(to),
    )
}

/// The year of the board's epoch: 2000 on ESP ports, 1970 on others.
pub const EPOCH: &str = "import time\nprint('Y',time.gmtime(0)[0])\n";

pub fn statvfs(path: &str) -> String {
    format!(
        "import os\ntry:\n print('V',*os.statvfs({}))\nexcept OSError as e:\n print('E',e.args[0])\n",
        lit(path)
    )
}

/// Streams files of `dir` as base64, one after the other, through
/// `_wrm_r` (see [`HELPERS`]): `F`, its lines, `.` (or `E <errno>`), then
/// `K`. Short, so that a batch of small files travels in one raw-paste
/// window: the directory once, the names as byte literals.
pub fn read_files(dir: &str, names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| bytes_lit(n)).collect();
    let dir = format!("{}/", dir.trim_end_matches('/'));
    format!(
        "d={}\nfor n in [{}]:_wrm_r(d+n.decode())\nprint('K')\n",
        lit(&dir),
        list.join(",")
    )
}

/// One piece of a base64 upload; the first piece truncates.
pub fn write_base64(path: &str, first: bool, data: &[u8]) -> String {
    use base64::Engine;
    let mut s = format!(
        "import binascii\ntry:\n f=open({},'{}');w=f.write;a=binascii.a2b_base64\n",
        lit(path),
        if first { "wb" } else { "ab" }
    );
    for piece in data.chunks(57 * 8) {
        s.push_str(&format!(
            " w(a('{}'))\n",
            base64::engine::general_purpose::STANDARD.encode(piece)
        ));
    }
    s.push_str(" f.close();print('K')\nexcept OSError as e:\n print('E',e.args[0])\n");
    s
}

/// The answer lines of a snippet, `\r` trimmed (boards end lines `\r\n`).
pub fn lines(stdout: &[u8]) -> impl Iterator<Item = &str> {
    stdout
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
}

/// An `E <errno>` line as an error about `what`.
pub fn os_error(line: &str, what: &str) -> Option<Error> {
    let mut it = line.split(' ');
    if it.next() != Some("E") {
        return None;
    }
    let errno = it.next().and_then(|n| n.parse().ok()).unwrap_or(libc::EIO);
    Some(if errno == libc::ENOENT {
        Error::NotFound(what.to_string())
    } else {
        Error::Os {
            errno,
            what: what.to_string(),
        }
    })
}

/// The one-line answer of `call`, `mkdirs` and the upload snippets.
pub fn expect_ok(stdout: &[u8], what: &str) -> Result<()> {
    for l in lines(stdout) {
        if l == "K" {
            return Ok(());
        }
        if let Some(e) = os_error(l, what) {
            return Err(e);
        }
    }
    Err(unexpected(stdout, what))
}

pub fn unexpected(stdout: &[u8], what: &str) -> Error {
    Error::Protocol(ProtocolError::Answer {
        what: what.to_string(),
        answer: String::from_utf8_lossy(&stdout[..stdout.len().min(200)]).into_owned(),
    })
}

pub fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_everything_that_could_be_code() {
        let l = lit("/a b/x'y\"z\\\n$(rm).py");
        assert_eq!(
            l,
            "b'/a b/x\\x27y\\x22z\\x5c\\x0a\\x24\\x28rm\\x29.py'.decode()"
        );
        assert_eq!(lit("/ä"), "b'/\\xc3\\xa4'.decode()");
    }

    #[test]
    fn answers_parse_with_either_line_ending() {
        assert!(expect_ok(b"K\r\n", "x").is_ok());
        assert!(matches!(expect_ok(b"E 2\n", "x"), Err(Error::NotFound(_))));
        assert!(matches!(
            expect_ok(b"E 28\n", "x"),
            Err(Error::Os { errno: 28, .. })
        ));
        assert!(matches!(expect_ok(b"junk\n", "x"), Err(Error::Protocol(_))));
    }

    #[test]
    fn unhex_round_trips_names_with_newlines() {
        assert_eq!(unhex("2f610a62").as_deref(), Some("/a\nb"));
        assert_eq!(unhex("2f6"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn finishing_a_batch_groups_files_by_directory_and_quotes_odd_names() {
        let call = |p: &str, t: &str, data: &[u8], pieces| {
            Finishing::new(p, t, data, "None".into(), pieces, usize::from(pieces > 0))
        };
        let code = finish_uploads(&[
            call("/lib/.wrm-00000a", "/lib/a.py", b"abc", 0),
            call("/lib/.wrm-00000b", "/lib/it's.py", b"de", 0),
            call("/.wrm-00000c", "/main.py", b"", 0),
            call("/.wrm-00000e", "/big.bin", b"fgh", 2),
            call("/x/.wrm-00000d", "/y/z.py", b"ij", 0),
        ]);
        assert_eq!(
            code,
            format!(
                "_wrm_go({},_wrm_fd('/lib/',[('a.py','00000a',3,None),\
                 (b'it\\x27s.py'.decode(),'00000b',2,None),])\
                 +_wrm_fd('/',[('main.py','00000c',0,None),])\
                 +[(b'/.wrm-00000e'.decode(),b'/big.bin'.decode(),3,None,2,1)]\
                 +[(b'/x/.wrm-00000d'.decode(),b'/y/z.py'.decode(),2,None,0,0)])\n",
                crc32fast::hash(b"abcdefghij")
            )
        );
    }
}
