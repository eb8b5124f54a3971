//! What the agent keeps for the control plane and how it gets there: the
//! records ([`record`]), the identity and sequence numbers ([`identity`]),
//! the outbox ([`outbox`]: a memory ring over the disk [`spool`], with its
//! [`crc32c`] checksum and the crash mirror [`at_risk`]), the link's state
//! as data ([`link`]), the upload itself ([`upstream`]) and the
//! remote-write push ([`remote_write`]), both sent by [`post`], and the
//! OTLP encoder ([`otlp`]). The delivery
//! loop that drives these lives in `agent`. May import `config`,
//! `net`, `outcome`, `os`, `format`.

pub mod at_risk;
pub mod crc32c;
pub mod identity;
pub mod link;
pub mod otlp;
pub mod outbox;
pub mod post;
pub mod record;
pub mod remote_write;
pub mod spool;
pub mod upstream;
