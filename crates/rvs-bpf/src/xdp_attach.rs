//! Attaching an XDP program to an interface: in the driver (native XDP), in the kernel's
//! generic hook (every interface has it), or native falling back to generic. The one way the
//! packet engine and the real servers' decapsulation program attach.

use aya::programs::xdp::XdpLinkId;
use aya::programs::{ProgramError, Xdp};

/// How an interface got a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic hook (skb mode): works everywhere, slower.
    Generic,
}

impl XdpMode {
    /// As the log, the API and the configuration say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpAttach {
    /// Native if the driver supports it, else generic.
    #[default]
    Auto,
    Native,
    Generic,
}

/// Attaches `prog` to `ifname` as `how` asks; the link and the mode it runs in. An interface
/// that does not exist is an error in every mode (no fallback hides it).
pub fn attach(prog: &mut Xdp, ifname: &str, how: XdpAttach) -> Result<(XdpLinkId, XdpMode), ProgramError> {
    let native = aya::programs::XdpMode::Driver;
    let generic = aya::programs::XdpMode::Skb;
    match how {
        XdpAttach::Native => Ok((prog.attach(ifname, native)?, XdpMode::Native)),
        XdpAttach::Generic => Ok((prog.attach(ifname, generic)?, XdpMode::Generic)),
        XdpAttach::Auto => match prog.attach(ifname, native) {
            Ok(id) => Ok((id, XdpMode::Native)),
            Err(e @ ProgramError::UnknownInterface { .. }) => Err(e),
            Err(_) => Ok((prog.attach(ifname, generic)?, XdpMode::Generic)),
        },
    }
}
