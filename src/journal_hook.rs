//! The layer's side of the crash journal: one tracked call's entry.
//! Compiled to nothing without the `journal` feature.

#[cfg(feature = "journal")]
mod enabled {
    use std::time::SystemTime;

    use crate::forwarded::Forwarded;
    use crate::journal::{Entry, EntryId, JournalWriter, Protocol, Route};
    use crate::protocol::{self, Target};

    /// The writer a layer journals to (set with `CancelOnDropLayer::journal`).
    pub(crate) type Writer = Option<JournalWriter>;

    /// A tracked operation's journal entry, if it has one: recorded when
    /// the name became known, removed when the operation is done or its
    /// cancel settles.
    // Boxed: a pointer in every tracked call and queued cancel, the entry
    // only where there is one.
    #[derive(Debug, Default)]
    pub(crate) struct JournalSlot(Option<Box<(JournalWriter, EntryId)>>);

    impl JournalSlot {
        /// Enqueues an entry for `target`'s operation, with the allowlisted
        /// part of `headers` (the entry drops credentials).
        pub(crate) fn record(writer: &Writer, target: &Target, headers: &Forwarded) -> Self {
            let Some(writer) = writer else {
                return JournalSlot(None);
            };
            let name = target.name().as_str();
            let protocol = match target.protocol() {
                protocol::Protocol::Rest => Protocol::Rest,
                protocol::Protocol::Grpc => Protocol::Grpc,
            };
            let Some((method, uri)) = target.cancel_endpoint() else {
                // A tonic `Channel` adds its own origin below the layer, so
                // the call carries none a reaper could go back to.
                tracing::warn!(
                    operation.name = name,
                    "gRPC call without an origin: not journaled (set CancelOnDropLayer::grpc_origin)"
                );
                return JournalSlot(None);
            };
            let route = match protocol {
                Protocol::Rest => Route::rest(&method, &uri),
                Protocol::Grpc => match (uri.scheme_str(), uri.authority()) {
                    (Some(scheme), Some(authority)) => Ok(Route::grpc(scheme, authority.as_str())),
                    _ => Route::rest(&method, &uri),
                },
            };
            let route = match route {
                Ok(route) => route,
                Err(e) => {
                    tracing::warn!(operation.name = name, error = %e, "not journaled");
                    return JournalSlot(None);
                }
            };
            let id = writer.next_id();
            writer.record(Entry::new(
                id.clone(),
                name,
                protocol,
                route,
                &target.headers(headers, 0),
                writer.owner().clone(),
                SystemTime::now(),
            ));
            JournalSlot(Some(Box::new((writer.clone(), id))))
        }

        /// Enqueues the entry's removal: the operation is done, or its
        /// cancel settled.
        pub(crate) fn remove(&mut self) {
            if let Some(entry) = self.0.take() {
                let (writer, id) = *entry;
                writer.remove(id);
            }
        }
    }
}

#[cfg(not(feature = "journal"))]
mod enabled {
    use crate::forwarded::Forwarded;

    use crate::protocol::Target;

    /// No journal in this build.
    pub(crate) type Writer = ();

    /// No journal in this build: nothing is recorded.
    #[derive(Debug, Default)]
    pub(crate) struct JournalSlot(());

    impl JournalSlot {
        pub(crate) fn record(_: &Writer, _: &Target, _: &Forwarded) -> Self {
            JournalSlot(())
        }

        pub(crate) fn remove(&mut self) {}
    }
}

pub(crate) use enabled::{JournalSlot, Writer};
