//! The response body handed to callers, and the bounded reader the layer uses
//! to look inside a response.

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response returned through [`CancelOnDrop`](crate::CancelOnDrop).
    ///
    /// Either the inner service's body passed through untouched (every response
    /// the layer did not inspect), or bytes the layer read while inspecting the
    /// response — possibly followed by the rest of the inner body when the body
    /// was larger than [`max_inspect_bytes`](crate::CancelOnDropLayer::max_inspect_bytes).
    /// Frames, trailers and errors are the inner body's.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Read {
            data: Option<Bytes>,
            trailers: Option<HeaderMap>,
            #[pin]
            rest: Option<B>,
        },
    }
}

impl<B> ResponseBody<B> {
    /// The inner body, untouched.
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    /// A body the layer read completely.
    pub(crate) fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        ResponseBody {
            kind: Kind::Read {
                data: Some(data).filter(|d| !d.is_empty()),
                trailers,
                rest: None,
            },
        }
    }

    /// The bytes already read, followed by the rest of the inner body.
    pub(crate) fn prefixed(prefix: Bytes, rest: B) -> Self {
        ResponseBody {
            kind: Kind::Read {
                data: Some(prefix).filter(|d| !d.is_empty()),
                trailers: None,
                rest: Some(rest),
            },
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("ResponseBody::Inner").field(body).finish(),
            Kind::Read { data, rest, .. } => f
                .debug_struct("ResponseBody::Read")
                .field("buffered", &data.as_ref().map_or(0, Bytes::len))
                .field("rest", rest)
                .finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Read {
                data,
                trailers,
                rest,
            } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(rest) = rest.as_pin_mut() {
                    return rest.poll_frame(cx);
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Read {
                data,
                trailers,
                rest,
            } => {
                data.is_none()
                    && trailers.is_none()
                    && rest.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Read { data, rest, .. } => {
                let buffered = data.as_ref().map_or(0, |d| d.len() as u64);
                match rest {
                    None => SizeHint::with_exact(buffered),
                    Some(rest) => {
                        let inner = rest.size_hint();
                        let mut hint = SizeHint::new();
                        hint.set_lower(inner.lower().saturating_add(buffered));
                        if let Some(upper) = inner.upper() {
                            hint.set_upper(upper.saturating_add(buffered));
                        }
                        hint
                    }
                }
            }
        }
    }
}

/// What [`Collect`] ends with.
pub(crate) enum Collected<B> {
    /// The whole body, no larger than the limit.
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// The body passed the limit: the bytes read so far and the unread rest.
    Overflow { prefix: Bytes, rest: B },
}

/// Reads a body into memory up to a limit, without losing anything past it.
///
/// A body that arrives as one frame (the common case for small JSON) is kept as
/// that frame's `Bytes`, without a copy.
pub(crate) struct Collect<B> {
    body: Option<B>,
    first: Option<Bytes>,
    buf: BytesMut,
    limit: usize,
    trailers: Option<HeaderMap>,
}

impl<B> fmt::Debug for Collect<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collect")
            .field(
                "read",
                &(self.first.as_ref().map_or(0, Bytes::len) + self.buf.len()),
            )
            .field("limit", &self.limit)
            .finish()
    }
}

impl<B> Collect<B> {
    /// Moves the reader out, leaving an empty, finished one.
    pub(crate) fn take(&mut self) -> Self {
        mem::replace(
            self,
            Collect {
                body: None,
                first: None,
                buf: BytesMut::new(),
                limit: 0,
                trailers: None,
            },
        )
    }
}

impl<B> Collect<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    pub(crate) fn new(body: B, limit: usize) -> Self {
        Collect {
            body: Some(body),
            first: None,
            buf: BytesMut::new(),
            limit,
            trailers: None,
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.buf.len()
    }

    fn take_data(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.buf).freeze(),
        }
    }

    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.first.is_none() && self.buf.is_empty() {
            self.first = Some(chunk);
            return;
        }
        if let Some(first) = self.first.take() {
            self.buf.reserve(first.len() + chunk.len());
            self.buf.extend_from_slice(&first);
        }
        self.buf.extend_from_slice(&chunk);
    }

    /// Drives the body until it ends or passes the limit. Polling again after
    /// it returned `Ready` yields an empty, complete body.
    pub(crate) fn poll_collect(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Collected<B>, B::Error>> {
        loop {
            if self.body.is_none() {
                return Poll::Ready(Ok(Collected::Complete {
                    data: self.take_data(),
                    trailers: self.trailers.take(),
                }));
            }
            if self.len() > self.limit {
                let rest = self.body.take();
                let prefix = self.take_data();
                return Poll::Ready(Ok(match rest {
                    Some(rest) => Collected::Overflow { prefix, rest },
                    None => Collected::Complete {
                        data: prefix,
                        trailers: None,
                    },
                }));
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                None => {
                    self.body = None;
                }
                Some(Err(e)) => {
                    self.body = None;
                    return Poll::Ready(Err(e));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.push(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            match self.trailers.as_mut() {
                                Some(t) => t.extend(trailers),
                                None => self.trailers = Some(trailers),
                            }
                        }
                    }
                },
            }
        }
    }
}
