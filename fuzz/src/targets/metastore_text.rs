//! The metadata store's text encodings, read back from rows any process
//! with database access could have written: producer state
//! (`epoch:seq:count:offset,...`), failed shard lists, agent address
//! lists and topic configurations (`key=value` lines). Input byte 0 picks the encoding; the rest is the stored text.
//! Must hold: nothing panics; what decodes encodes to text that decodes to
//! the same.

/// The agent's module itself, compiled here on its own (it uses std and
/// `streamhouse_storage` only), so fuzzing does not build the agent.
#[path = "../../../agent/src/metastore/text.rs"]
mod metastore;

pub fn run(data: &[u8]) {
    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match kind % 4 {
        0 => {
            let Ok(batches) = metastore::decode_producers(7, &text) else {
                return;
            };
            let once = metastore::encode_producers(&batches);
            let again = once
                .get(&7)
                .map(|t| metastore::decode_producers(7, t))
                .transpose();
            let again = match again {
                Ok(a) => a.unwrap_or_default(),
                Err(e) => panic!("encoded producer state does not decode: {e}"),
            };
            assert_eq!(metastore::encode_producers(&again), once);
        }
        1 => {
            let shards = metastore::decode_shards(&text);
            assert_eq!(
                metastore::decode_shards(&metastore::encode_shards(&shards)),
                shards
            );
        }
        3 => {
            let config = metastore::decode_config(&text);
            assert!(config.keys().all(|k| !k.is_empty() && !k.contains('\n')));
            // A value may hold '=' (split at the first), never a line break.
            if config
                .iter()
                .all(|(k, v)| !k.contains(['=', '\r']) && !v.contains(['\n', '\r']))
            {
                assert_eq!(
                    metastore::decode_config(&metastore::encode_config(&config)),
                    config
                );
            }
        }
        _ => {
            let addrs = metastore::split_addresses(&text);
            assert!(addrs.iter().all(|a| !a.is_empty() && !a.contains(',')));
            assert_eq!(metastore::split_addresses(&addrs.join(",")), addrs);
        }
    }
}
