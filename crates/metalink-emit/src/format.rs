//! The three document formats, and everything that differs between them:
//! file extension, manifest name, content type and writer. Files and the
//! server both go through [`Format::write`], so they cannot drift apart.

use clap::ValueEnum;
use releng_manifest::MetalinkFormat;

use crate::catalog::{Catalog, Repo};
use crate::{metalink, mirrorlist};

/// Content type of plain text: a mirrorlist, and the server's messages.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// A file format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Metalink 3.0 as MirrorManager writes it (`.metalink`).
    Metalink3,
    /// RFC 5854 Metalink 4 (`.meta4`).
    Meta4,
    /// Plain list of base URLs with a `#` header line (`.mirrorlist`).
    Mirrorlist,
}

/// What a document says besides its repository and mirrors; each format
/// takes the part it needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Header<'a> {
    /// RFC 1123 date, Metalink 3.0's `pubdate`.
    pub pubdate: &'a str,
    /// RFC 3339 date, meta4's `published`.
    pub published: &'a str,
    /// The client's country, in a mirrorlist's `#` line (`global` when
    /// none).
    pub country: Option<&'a str>,
}

impl Format {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Metalink3 => "metalink",
            Format::Meta4 => "meta4",
            Format::Mirrorlist => "mirrorlist",
        }
    }

    /// The manifest's name for it.
    pub fn manifest_format(self) -> MetalinkFormat {
        match self {
            Format::Metalink3 => MetalinkFormat::Metalink3,
            Format::Meta4 => MetalinkFormat::Meta4,
            Format::Mirrorlist => MetalinkFormat::Mirrorlist,
        }
    }

    /// The HTTP content type it is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Metalink3 => "application/metalink+xml",
            Format::Meta4 => "application/metalink4+xml",
            Format::Mirrorlist => TEXT,
        }
    }

    /// Appends the document for `repo`, listing the URLs of `protocols` of
    /// the hosts in `order`; returns the number of URLs listed.
    pub fn write(
        self,
        cat: &Catalog,
        repo: &Repo,
        order: &[u32],
        protocols: u8,
        header: &Header,
        out: &mut Vec<u8>,
    ) -> u32 {
        match self {
            Format::Metalink3 => metalink::write3(cat, repo, order, protocols, header.pubdate, out),
            Format::Meta4 => metalink::write4(cat, repo, order, protocols, header.published, out),
            Format::Mirrorlist => {
                mirrorlist::write(cat, repo, order, protocols, header.country, out)
            }
        }
    }
}
