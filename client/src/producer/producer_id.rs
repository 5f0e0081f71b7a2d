//! Producer ids: asking an agent for one, when the producer is built and
//! after a batch failed for good (so its sequence numbers are never used
//! again). Touches nothing but `Inner::pid`.

use streamhouse_proto as pb;
use streamhouse_proto::admin_service_client::AdminServiceClient;

use super::state::Inner;
use crate::error::{Error, Result};
use crate::net::pool::bounded;

impl Inner {
    pub(super) async fn new_producer_id(&self) -> Result<()> {
        let mut last = Error::Config("no agent address known".into());
        let mut addrs = self.config.bootstrap.clone();
        if let Some(a) = self.metadata.any_address(&self.pool) {
            addrs.push(a);
        }
        for addr in addrs {
            let lease = match self.pool.get(&addr).await {
                Ok(l) => l,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut admin = AdminServiceClient::new(lease.channel());
            let call = admin.init_producer_id(pb::InitProducerIdRequest::default());
            match bounded(self.pool.config().call_timeout, "producer id", call).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let epoch = i16::try_from(r.producer_epoch).unwrap_or(0);
                    *self.pid.lock() = (r.producer_id, epoch);
                    return Ok(());
                }
                Err(s) => last = s.into(),
            }
        }
        Err(last)
    }
}
