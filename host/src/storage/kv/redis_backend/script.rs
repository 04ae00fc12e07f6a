//! `apply.lua`'s arguments and answers: each write as the script takes it,
//! and the script's reply as outcomes or the refusal.

use super::super::logic::{Outcome, WriteOp, check_value, expiry_for};
use super::super::{KvError, check_key};
use super::storage;

/// A write as the script's arguments: kind, key, value or delta, expiry
/// for a new value, expected value.
pub(super) type Encoded<'a> = (&'static str, &'a str, Vec<u8>, u64, Option<Vec<u8>>);

pub(super) fn encode(op: &WriteOp, now_ms: u64) -> Result<Encoded<'_>, KvError> {
    let expiry = |ttl: Option<u32>| expiry_for(ttl, now_ms);
    let value = |v: &[u8]| check_value(v).map(|()| v.to_vec());
    let encoded = match op {
        WriteOp::Set { key, value: v, ttl } => {
            ("set", key.as_str(), value(v)?, expiry(*ttl)?, None)
        }
        WriteOp::Delete { key } => ("del", key.as_str(), Vec::new(), 0, None),
        WriteOp::Increment { key, delta, ttl } => (
            "inc",
            key.as_str(),
            delta.to_string().into_bytes(),
            expiry(*ttl)?,
            None,
        ),
        WriteOp::CompareAndSwap {
            key,
            expected,
            new,
            ttl,
        } => (
            "cas",
            key.as_str(),
            value(new)?,
            expiry(*ttl)?,
            expected.clone(),
        ),
    };
    check_key(encoded.1)?;
    Ok(encoded)
}

/// The outcomes of an `apply.lua` reply, or its refusal.
pub(super) fn decode_reply(
    ops: &[WriteOp],
    reply: &[redis::Value],
) -> Result<Vec<Outcome>, KvError> {
    let text = |v: &redis::Value| -> String {
        match v {
            redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(n) => n.to_string(),
            other => format!("{other:?}"),
        }
    };
    let words: Vec<String> = reply.iter().map(text).collect();
    match words.first().map(String::as_str) {
        Some("ok") => ops
            .iter()
            .zip(&words[1..])
            .map(|(op, word)| match op {
                WriteOp::Set { .. } | WriteOp::Delete { .. } => Ok(Outcome::Done),
                WriteOp::CompareAndSwap { .. } => Ok(Outcome::Swapped(word == "swapped")),
                WriteOp::Increment { .. } => word
                    .parse()
                    .map(Outcome::Counter)
                    .map_err(|_| storage(format!("a counter of {word:?}"))),
            })
            .collect(),
        Some("err") => match words.get(2).map(String::as_str) {
            Some("quota") => Err(KvError::QuotaExceeded),
            Some("not-integer") => Err(KvError::NotAnInteger(
                words.get(3).cloned().unwrap_or_default(),
            )),
            other => Err(storage(format!("refused: {other:?}"))),
        },
        _ => Err(storage(format!("an unexpected reply {words:?}"))),
    }
}
