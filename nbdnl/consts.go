package nbdnl

import "github.com/nbdboot/nbdboot/protocol"

// Generic netlink family, from include/uapi/linux/nbd-netlink.h.
const (
	FamilyName     = "nbd"          // NBD_GENL_FAMILY_NAME
	FamilyVersion  = 1              // NBD_GENL_VERSION
	MulticastGroup = "nbd_mc_group" // NBD_GENL_MCAST_GROUP_NAME
)

// Commands (enum nbd_commands).
const (
	CmdConnect     uint8 = 1 // NBD_CMD_CONNECT
	CmdDisconnect  uint8 = 2 // NBD_CMD_DISCONNECT
	CmdReconfigure uint8 = 3 // NBD_CMD_RECONFIGURE
	CmdLinkDead    uint8 = 4 // NBD_CMD_LINK_DEAD, multicast by the kernel
	CmdStatus      uint8 = 5 // NBD_CMD_STATUS
)

// Top-level attributes (enum nbd_attrs).
const (
	AttrIndex             uint16 = 1  // NBD_ATTR_INDEX, u32
	AttrSizeBytes         uint16 = 2  // NBD_ATTR_SIZE_BYTES, u64
	AttrBlockSizeBytes    uint16 = 3  // NBD_ATTR_BLOCK_SIZE_BYTES, u64
	AttrTimeout           uint16 = 4  // NBD_ATTR_TIMEOUT, u64 seconds
	AttrServerFlags       uint16 = 5  // NBD_ATTR_SERVER_FLAGS, u64
	AttrClientFlags       uint16 = 6  // NBD_ATTR_CLIENT_FLAGS, u64
	AttrSockets           uint16 = 7  // NBD_ATTR_SOCKETS, nested SOCK_ITEMs
	AttrDeadConnTimeout   uint16 = 8  // NBD_ATTR_DEAD_CONN_TIMEOUT, u64 seconds
	AttrDeviceList        uint16 = 9  // NBD_ATTR_DEVICE_LIST, nested DEVICE_ITEMs
	AttrBackendIdentifier uint16 = 10 // NBD_ATTR_BACKEND_IDENTIFIER, string
)

// Nested attributes of AttrSockets and AttrDeviceList.
const (
	AttrSockItem uint16 = 1 // NBD_SOCK_ITEM, nested
	AttrSockFD   uint16 = 1 // NBD_SOCK_FD, u32 inside a SOCK_ITEM

	AttrDeviceItem      uint16 = 1 // NBD_DEVICE_ITEM, nested
	AttrDeviceIndex     uint16 = 1 // NBD_DEVICE_INDEX, u32 inside a DEVICE_ITEM
	AttrDeviceConnected uint16 = 2 // NBD_DEVICE_CONNECTED, u8 inside a DEVICE_ITEM
)

// Client flags (NBD_ATTR_CLIENT_FLAGS).
const (
	// ClientFlagDestroyOnDisconnect removes the device once it disconnects.
	ClientFlagDestroyOnDisconnect uint64 = 1 << 0
	// ClientFlagDisconnectOnClose disconnects when the last opener closes it.
	ClientFlagDisconnectOnClose uint64 = 1 << 1
)

// Transmission flags the kernel looks at in NBD_ATTR_SERVER_FLAGS (the
// export's flags from the handshake, passed through unchanged, so they are
// the protocol's own).
const (
	ServerFlagHasFlags     = uint64(protocol.FlagHasFlags)
	ServerFlagReadOnly     = uint64(protocol.FlagReadOnly)
	ServerFlagSendFlush    = uint64(protocol.FlagSendFlush)
	ServerFlagSendFUA      = uint64(protocol.FlagSendFUA)
	ServerFlagSendTrim     = uint64(protocol.FlagSendTrim)
	ServerFlagCanMultiConn = uint64(protocol.FlagCanMultiConn)
)

// ioctl request numbers: _IO(0xab, n) from include/uapi/linux/nbd.h. _IO
// has no size or direction bits, so the value is 0xab00|n on every
// architecture Linux runs nbd on.
const (
	ioctlSetSock       uintptr = 0xab00 // NBD_SET_SOCK
	ioctlSetBlkSize    uintptr = 0xab01 // NBD_SET_BLKSIZE
	ioctlSetSize       uintptr = 0xab02 // NBD_SET_SIZE
	ioctlDoIt          uintptr = 0xab03 // NBD_DO_IT
	ioctlClearSock     uintptr = 0xab04 // NBD_CLEAR_SOCK
	ioctlClearQue      uintptr = 0xab05 // NBD_CLEAR_QUE
	ioctlPrintDebug    uintptr = 0xab06 // NBD_PRINT_DEBUG
	ioctlSetSizeBlocks uintptr = 0xab07 // NBD_SET_SIZE_BLOCKS
	ioctlDisconnect    uintptr = 0xab08 // NBD_DISCONNECT
	ioctlSetTimeout    uintptr = 0xab09 // NBD_SET_TIMEOUT
	ioctlSetFlags      uintptr = 0xab0a // NBD_SET_FLAGS
)
