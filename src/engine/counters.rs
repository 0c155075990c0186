//! Event counters. Where a counter means the same as one of the kernel's `MPTcpExt` MIB
//! counters, it carries that name, so `mpconv status` reads like `nstat` on an MPTCP host.

macro_rules! counters {
    ($( $(#[$doc:meta])* $field:ident => $name:literal, )*) => {
        /// Monotonic event counters (plain integers: the engine is single-threaded).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl Counters {
            /// Every counter with its public name, in a fixed order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$( ($name, self.$field), )*].into_iter()
            }
        }
    };
}

counters! {
    /// SYNs sent with MP_CAPABLE.
    mp_capable_syn_tx => "MPCapableSYNTX",
    /// SYN/ACKs received with MP_CAPABLE: the server speaks MPTCP.
    mp_capable_synack_rx => "MPCapableSYNACKRX",
    /// SYN/ACKs without MP_CAPABLE: the connection stays plain TCP.
    mp_capable_fallback_synack => "MPCapableFallbackSYNACK",
    /// MP_JOIN SYNs sent.
    mp_join_syn_tx => "MPJoinSynTx",
    /// MP_JOIN SYN/ACKs received with a valid HMAC.
    mp_join_synack_rx => "MPJoinSynAckRx",
    /// MP_JOIN SYN/ACKs whose HMAC did not verify (the subflow is reset).
    mp_join_synack_hmac_failure => "MPJoinSynAckHMacFailure",
    /// Join SYN/ACKs without MP_JOIN (the subflow is reset, RFC 8684 §3.2).
    mp_join_synack_missing => "MPJoinSynAckMissing",
    /// Joins acknowledged by the server (fourth ACK): the subflow is established.
    mp_join_ack_rx => "MPJoinAckRx",
    /// Data segments received with a DSS mapping.
    dss_rx => "DSSRx",
    /// Data on a subflow that no mapping covers (dropped).
    dss_no_mapping => "DSSNoMapping",
    /// Server segments dropped because the subflow's RECV table was full (retransmitted later).
    recv_table_full => "RecvTableFull",
    /// Subflows reset (and opened again) because bytes beyond the LAN host's window blocked
    /// them while the host waited for a hole: the server sends its unacknowledged data again.
    subflow_stall_reset => "SubflowStallReset",
    /// LAN bytes sent on a subflow without a SEND table entry (table full): a retransmission
    /// of them would be remapped.
    send_table_full => "SendTableFull",
    /// ADD_ADDR received with a valid HMAC, and echoed.
    add_addr => "AddAddr",
    /// ADD_ADDR received with a bad HMAC (ignored).
    add_addr_hmac_failure => "AddAddrHMacFailure",
    /// ADD_ADDR echoes sent.
    echo_add => "EchoAdd",
    /// REMOVE_ADDR received.
    rm_addr => "RmAddr",
    /// REMOVE_ADDR sent (an uplink went down).
    rm_addr_tx => "RmAddrTx",
    /// MP_PRIO received.
    mp_prio_rx => "MPPrioRx",
    /// MP_PRIO sent (backup or degraded uplink, handover, failover to a backup).
    mp_prio_tx => "MPPrioTx",
    /// Subflows opened again on an uplink that came back, or for a handover.
    subflow_reopened => "SubflowReopened",
    /// Filler segments sent into subflow holes no host byte maps to any more.
    subflow_hole_plugged => "SubflowHolePlugged",
    /// MP_FAIL received (mid-connection fallback is not supported: the connection is reset).
    mp_fail_rx => "MPFailRx",
    /// Subflows reset by the peer without MP_FASTCLOSE while others carried on.
    subflow_reset_rx => "SubflowResetRx",
    /// MP_FASTCLOSE sent (the LAN host reset its connection).
    mp_fastclose_tx => "MPFastcloseTx",
    /// MP_FASTCLOSE received (the server reset the connection).
    mp_fastclose_rx => "MPFastcloseRx",
    /// MP_TCPRST sent.
    mp_rst_tx => "MPRstTx",
    /// DATA_FIN received from the server.
    data_fin_rx => "DataFinRx",
    /// Infinite mappings received (counted; the connection is reset).
    infinite_map_rx => "InfiniteMapRx",
    /// Explicit mode: the concentrator refused a connection (Error TLV) or answered garbage.
    convert_error => "ConvertError",
    /// Connections converted to MPTCP.
    conn_converted => "ConvConverted",
    /// Connections that stayed plain TCP (server without MPTCP or options stripped).
    conn_fallback => "ConvFallback",
    /// New connections passed unconverted because the table was full.
    conn_table_full => "ConvTableFull",
    /// Connections forgotten after the idle timeout.
    conn_expired => "ConvExpired",
    /// Packets that could not be parsed (passed or dropped, never fatal).
    pkt_malformed => "PktMalformed",
    /// MPTCP options that could not be parsed (ignored, as Linux does).
    opt_malformed => "OptMalformed",
    /// Packets from an uplink that belong to no connection (dropped).
    pkt_unknown => "PktUnknown",
    /// Resets answering those of them that were not resets (RFC 9293 §3.10.7.1).
    stray_rst_tx => "StrayRstTx",
    /// Packets that could not be queued because the transmit ring was full.
    tx_ring_full => "TxRingFull",
}
