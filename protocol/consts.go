package protocol

// Handshake magics.
const (
	NBDMagic      uint64 = 0x4e42444d41474943 // "NBDMAGIC"
	IHaveOpt      uint64 = 0x49484156454F5054 // "IHAVEOPT"
	OptReplyMagic uint64 = 0x0003e889045565a9
	// OldstyleMagic is recognised only to reject it; oldstyle is not spoken.
	OldstyleMagic uint64 = 0x00420281861253
)

// Transmission magics.
const (
	RequestMagic           uint32 = 0x25609513
	SimpleReplyMagic       uint32 = 0x67446698
	StructuredReplyMagic   uint32 = 0x668e33ef
	legacy1997RequestMagic uint32 = 0x12560953 // reserved by the spec, never valid
)

// Handshake flags sent by the server (u16).
const (
	FlagFixedNewstyle uint16 = 1 << 0
	FlagNoZeroes      uint16 = 1 << 1
)

// Client flags sent in reply to the handshake flags (u32).
const (
	ClientFlagFixedNewstyle uint32 = 1 << 0
	ClientFlagNoZeroes      uint32 = 1 << 1
	clientFlagsKnown               = ClientFlagFixedNewstyle | ClientFlagNoZeroes
)

// Option codes.
const (
	OptExportName      uint32 = 1
	OptAbort           uint32 = 2
	OptList            uint32 = 3
	OptPeekExport      uint32 = 4 // withdrawn
	OptStartTLS        uint32 = 5
	OptInfo            uint32 = 6
	OptGo              uint32 = 7
	OptStructuredReply uint32 = 8
	OptListMetaContext uint32 = 9
	OptSetMetaContext  uint32 = 10
	OptExtendedHeaders uint32 = 11
)

// Option reply types. Error replies have bit 31 set.
const (
	RepAck         uint32 = 1
	RepServer      uint32 = 2
	RepInfo        uint32 = 3
	RepMetaContext uint32 = 4

	RepFlagError        uint32 = 1 << 31
	RepErrUnsup         uint32 = RepFlagError | 1
	RepErrPolicy        uint32 = RepFlagError | 2
	RepErrInvalid       uint32 = RepFlagError | 3
	RepErrPlatform      uint32 = RepFlagError | 4
	RepErrTLSReqd       uint32 = RepFlagError | 5
	RepErrUnknown       uint32 = RepFlagError | 6
	RepErrShutdown      uint32 = RepFlagError | 7
	RepErrBlockSizeReqd uint32 = RepFlagError | 8
	RepErrTooBig        uint32 = RepFlagError | 9
	RepErrExtHeaderReqd uint32 = RepFlagError | 10
)

// NBD_INFO_* types carried in RepInfo replies and requested by INFO/GO.
const (
	InfoExport      uint16 = 0
	InfoName        uint16 = 1
	InfoDescription uint16 = 2
	InfoBlockSize   uint16 = 3
)

// Transmission flags (u16), sent with the export size.
const (
	FlagHasFlags        uint16 = 1 << 0
	FlagReadOnly        uint16 = 1 << 1
	FlagSendFlush       uint16 = 1 << 2
	FlagSendFUA         uint16 = 1 << 3
	FlagRotational      uint16 = 1 << 4
	FlagSendTrim        uint16 = 1 << 5
	FlagSendWriteZeroes uint16 = 1 << 6
	FlagSendDF          uint16 = 1 << 7
	FlagCanMultiConn    uint16 = 1 << 8
	FlagSendResize      uint16 = 1 << 9
	FlagSendCache       uint16 = 1 << 10
	FlagSendFastZero    uint16 = 1 << 11
)

// Commands.
const (
	CmdRead        uint16 = 0
	CmdWrite       uint16 = 1
	CmdDisc        uint16 = 2
	CmdFlush       uint16 = 3
	CmdTrim        uint16 = 4
	CmdCache       uint16 = 5
	CmdWriteZeroes uint16 = 6
	CmdBlockStatus uint16 = 7
	CmdResize      uint16 = 8
)

// Command flags.
const (
	CmdFlagFUA      uint16 = 1 << 0
	CmdFlagNoHole   uint16 = 1 << 1
	CmdFlagDF       uint16 = 1 << 2
	CmdFlagReqOne   uint16 = 1 << 3
	CmdFlagFastZero uint16 = 1 << 4
)

// Structured reply chunk flags and types.
const (
	ChunkFlagDone uint16 = 1 << 0

	ChunkNone        uint16 = 0
	ChunkOffsetData  uint16 = 1
	ChunkOffsetHole  uint16 = 2
	ChunkBlockStatus uint16 = 5
	ChunkError       uint16 = 32769
	ChunkErrorOffset uint16 = 32770
)

// Error values carried in replies (Linux errno numbering, as the spec fixes them).
const (
	EPERM     uint32 = 1
	EIO       uint32 = 5
	ENOMEM    uint32 = 12
	EINVAL    uint32 = 22
	ENOSPC    uint32 = 28
	EOVERFLOW uint32 = 75
	ENOTSUP   uint32 = 95
	ESHUTDOWN uint32 = 108
)

// base:allocation metadata context flags.
const (
	StateHole uint32 = 1 << 0
	StateZero uint32 = 1 << 1

	MetaContextBaseAllocation = "base:allocation"
)

// Limits.
const (
	DefaultPort = 10809
	// MaxStringLen bounds export names, descriptions and context names.
	MaxStringLen = 4096
	// MaxOptionLen bounds the payload of any option request.
	MaxOptionLen = 64 << 10
	// MaxPayload is the largest READ or WRITE payload accepted (32 MiB).
	MaxPayload = 32 << 20
	// MaxInfoRequests bounds the number of NBD_INFO requests in INFO/GO.
	MaxInfoRequests = 64
	// MaxMetaQueries bounds the number of queries in LIST/SET_META_CONTEXT.
	MaxMetaQueries = 64
)
