//! A `BufRead` wrapper that counts consumed bytes, tracks line/column and
//! enforces the document-size and per-token byte budgets.

use std::io::{self, BufRead, Read};

use super::chars::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Document,
    Token,
}

pub(crate) struct Source<R> {
    inner: R,
    pub consumed: u64,
    pub pos: Pos,
    pub max_document: u64,
    pub token_start: u64,
    pub max_token: u64,
    pub limit_hit: Option<LimitHit>,
}

impl<R: BufRead> Source<R> {
    pub(crate) fn new(inner: R, max_document: u64, max_token: u64) -> Self {
        Source {
            inner,
            consumed: 0,
            pos: Pos::start(),
            max_document,
            token_start: 0,
            max_token,
            limit_hit: None,
        }
    }

    /// Starts a new token budget at the current position.
    pub(crate) fn mark_token(&mut self) {
        self.token_start = self.consumed;
    }

    /// Peeks at the buffered input without consuming it (may return fewer
    /// bytes than exist in the document).
    pub(crate) fn peek(&mut self) -> io::Result<&[u8]> {
        self.fill_buf()
    }

    /// Consumes bytes without updating the column (used for the BOM).
    pub(crate) fn skip_invisible(&mut self, n: usize) {
        self.inner.consume(n);
        self.consumed = self.consumed.saturating_add(n as u64);
    }
}

impl<R: BufRead> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Source<R> {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.consumed > self.max_document {
            self.limit_hit = Some(LimitHit::Document);
            return Err(io::Error::other("document size limit exceeded"));
        }
        let used = self.consumed.saturating_sub(self.token_start);
        if used > self.max_token {
            self.limit_hit = Some(LimitHit::Token);
            return Err(io::Error::other("token size limit exceeded"));
        }
        // Never hand out more than one byte past either limit.
        let doc_room = (self.max_document - self.consumed).saturating_add(1);
        let tok_room = (self.max_token - used).saturating_add(1);
        let room = usize::try_from(doc_room.min(tok_room)).unwrap_or(usize::MAX);
        let buf = self.inner.fill_buf()?;
        let n = buf.len().min(room);
        Ok(buf.get(..n).unwrap_or(&[]))
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        if amt == 0 {
            return;
        }
        if let Ok(buf) = self.inner.fill_buf()
            && let Some(s) = buf.get(..amt)
        {
            self.pos.advance(s);
        }
        self.inner.consume(amt);
        self.consumed = self.consumed.saturating_add(amt as u64);
    }
}
