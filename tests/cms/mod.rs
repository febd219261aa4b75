//! The CMS SignedData reader and trust evaluation, against blobs signed by `openssl cms`,
//! including the differential test against `openssl cms -verify`.

mod differential;
mod pki;
mod signed;
