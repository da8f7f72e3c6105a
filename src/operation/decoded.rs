//! Typed decoding of an [`Operation`]'s `metadata` and result.

use serde::de::DeserializeOwned;

use super::{Operation, Status};

/// An [`Operation`] with its `metadata` and result decoded into the caller's
/// own types, from [`Operation::decode`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Decoded<M, R> {
    /// The operation's name.
    pub name: String,
    /// Whether the operation is done.
    pub done: bool,
    /// `metadata` decoded as `M`; `None` when absent or `null`.
    pub metadata: Option<M>,
    /// The result (AIP-151): `Err` with the operation's `error` when it
    /// failed or was cancelled (`error.code == 1`); otherwise `Ok` with
    /// `response` decoded as `R`, or `Ok(None)` while it is not done (or a
    /// done operation has no response, as for an empty result).
    pub result: Result<Option<R>, Status>,
}

impl Operation {
    /// Decodes `metadata` as `M` and `response` as `R` with serde.
    ///
    /// Both are JSON `Any`s: their `@type` field is ignored unless your types
    /// ask for it (serde ignores unknown fields by default).
    ///
    /// # Errors
    /// The `serde_json` error when `metadata` or `response` does not match
    /// its type.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct Progress { progress_percent: u32 }
    /// #[derive(serde::Deserialize)]
    /// struct Job { state: String }
    ///
    /// let op = tower_lro::Operation::from_json(br#"{
    ///     "name": "projects/p/locations/l/operations/o",
    ///     "done": true,
    ///     "metadata": {"@type": "type.googleapis.com/x.Progress", "progressPercent": 100},
    ///     "response": {"@type": "type.googleapis.com/x.Job", "state": "SUCCEEDED"}
    /// }"#)?;
    /// let decoded = op.decode::<Progress, Job>()?;
    /// assert_eq!(decoded.metadata.map(|m| m.progress_percent), Some(100));
    /// assert_eq!(decoded.result.unwrap().map(|j| j.state).as_deref(), Some("SUCCEEDED"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn decode<M, R>(&self) -> Result<Decoded<M, R>, serde_json::Error>
    where
        M: DeserializeOwned,
        R: DeserializeOwned,
    {
        let metadata = match &self.metadata {
            Some(raw) => serde_json::from_str::<Option<M>>(raw.get())?,
            None => None,
        };
        let result = match &self.error {
            Some(status) => Err(status.clone()),
            None => match &self.response {
                Some(raw) => Ok(serde_json::from_str::<Option<R>>(raw.get())?),
                None => Ok(None),
            },
        };
        Ok(Decoded {
            name: self.name.clone(),
            done: self.done,
            metadata,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Meta {
        step: u32,
    }

    #[test]
    fn a_cancelled_operation_decodes_to_its_status() {
        let op = Operation::from_json(
            br#"{"name":"operations/o","done":true,"metadata":{"step":3},"error":{"code":1,"message":"Operation was cancelled."}}"#,
        )
        .unwrap();
        let d = op.decode::<Meta, serde_json::Value>().unwrap();
        assert_eq!(d.metadata, Some(Meta { step: 3 }));
        let status = d.result.unwrap_err();
        assert_eq!(status.code, Status::CANCELLED);
    }

    #[test]
    fn a_running_operation_has_no_result_yet() {
        let op = Operation::from_json(br#"{"name":"operations/o","metadata":null}"#).unwrap();
        let d = op.decode::<Meta, Meta>().unwrap();
        assert_eq!(d.metadata, None);
        assert_eq!(d.result, Ok(None));
        assert!(!d.done);
    }

    #[test]
    fn a_mismatched_response_is_an_error() {
        let op =
            Operation::from_json(br#"{"name":"operations/o","done":true,"response":{"step":"x"}}"#)
                .unwrap();
        assert!(op.decode::<Meta, Meta>().is_err());
    }
}
