//! Why the group coordinator refused a request: one variant per condition of the group state
//! machines (classic and KIP-848) and of offset commits. The Kafka error code each one is sent
//! as is decided once, in `handlers::errors`; nothing in `group` names a protocol error.

/// See the module docs. Plain data (no causes attached), so results carrying it can be cloned
/// and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The member id is not (or no longer) in the group.
    #[error("unknown member")]
    UnknownMemberId,
    /// Another member holds the request's `group.instance.id`: the caller is a zombie.
    #[error("the static member's instance id belongs to another member")]
    FencedInstanceId,
    /// A classic request for another generation than the group's.
    #[error("illegal generation")]
    IllegalGeneration,
    /// The group is rebalancing: the member must rejoin.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// The member's protocol type or protocols do not match the group's.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's `group.min/max.session.timeout.ms`.
    #[error("session timeout out of the broker's range")]
    InvalidSessionTimeout,
    /// A first JoinGroup (v4+) gets a member id to rejoin with.
    #[error("member id required")]
    MemberIdRequired,
    /// The group was deleted (or unloaded) while the request looked at it.
    #[error("the group is dead")]
    GroupDead,
    /// A KIP-848 member epoch older than the group's (commits and fetches).
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// A KIP-848 heartbeat with an epoch the coordinator did not give the member.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// A server-side assignor this broker does not have.
    #[error("unsupported assignor")]
    UnsupportedAssignor,
    /// A subscription regex that does not compile.
    #[error("invalid regular expression")]
    InvalidRegularExpression,
    /// A KIP-848 heartbeat whose fields contradict each other or the protocol.
    #[error("invalid heartbeat")]
    InvalidRequest,
    /// A static member rejoining while its previous incarnation still holds the instance id.
    #[error("instance id not released")]
    UnreleasedInstanceId,
    /// An empty group id.
    #[error("invalid group id")]
    InvalidGroupId,
    /// DeleteGroups of a group that does not exist.
    #[error("group not found")]
    GroupIdNotFound,
    /// DeleteGroups of a group that still has members.
    #[error("group is not empty")]
    NonEmptyGroup,
    /// An offset commit for a partition that does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// An offset commit whose metadata is over `offset.metadata.max.bytes`.
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// `__consumer_offsets` could not be written (the cause is logged where it happened).
    #[error("the offsets topic cannot be written")]
    StoreUnavailable,
    /// This broker does not (or no longer) coordinate the group: its partition of
    /// `__consumer_offsets` is led elsewhere.
    #[error("not the coordinator of this group")]
    NotCoordinator,
    /// The group's partition is being loaded here: retry shortly.
    #[error("the group's partition is loading")]
    CoordinatorLoadInProgress,
}
