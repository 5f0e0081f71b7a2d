//! Producer settings are checked before anything connects: a bad value is
//! a configuration error naming the setting.

use streamhouse_client::{Error, Producer, MAX_IN_FLIGHT_PER_PARTITION};

#[tokio::test]
async fn in_flight_per_partition_outside_its_range_is_a_config_error() {
    for n in [0, MAX_IN_FLIGHT_PER_PARTITION + 1] {
        let err = Producer::builder(["127.0.0.1:1"])
            .max_in_flight_per_partition(n)
            .build()
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Config(_)), "{n}: {err}");
        assert!(
            err.to_string().contains("max_in_flight_per_partition"),
            "{err}"
        );
    }
    // The largest allowed value passes the check and fails only on the
    // connection (nothing listens on port 1).
    let err = Producer::builder(["127.0.0.1:1"])
        .max_in_flight_per_partition(MAX_IN_FLIGHT_PER_PARTITION)
        .build()
        .await
        .err()
        .expect("nothing listens");
    assert!(!matches!(err, Error::Config(_)), "{err}");
    assert_eq!(MAX_IN_FLIGHT_PER_PARTITION, 16);
}
