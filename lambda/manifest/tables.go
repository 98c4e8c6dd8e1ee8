// Package manifest is the one description of what is deployed, shared by
// the CDK app, the runtime and the local tools so they can never disagree:
// the DynamoDB tables (keys, indexes, expiry attribute; this file), the six
// functions and the routes of both APIs (functions.go), and the metrics.
// Plain Go: no CDK, no AWS SDK.
//
// Nearly every write is a single-item put or update: ownership is part of
// the key (userId is the partition key of every user-owned item), and
// multi-item deletes are ordered so that a crash leaves only unreachable
// items behind. Creating or deleting a saved prompt also changes the user's
// prompt counter (an item of the prompts table) in the same transaction
// (TransactWriteItems), so that the per-user limit holds.
package manifest

import "github.com/p2/buddy/lambda/config"

// KeyType is a DynamoDB scalar attribute type.
type KeyType string

const (
	String KeyType = "S"
	Number KeyType = "N"
)

// Key is one key attribute.
type Key struct {
	Name string
	Type KeyType
}

// Index is a global secondary index projecting all attributes.
type Index struct {
	Name         string
	PartitionKey Key
	SortKey      *Key
}

// Table is one table definition.
type Table struct {
	// ID is the construct id in the stack and the suffix of the local name.
	ID string
	// EnvVar carries the deployed table name to the functions.
	EnvVar       string
	PartitionKey Key
	SortKey      *Key
	Indexes      []Index
	// TTLAttribute, when set, holds an epoch-seconds expiry.
	TTLAttribute string
}

// Attribute names shared by store code and table definitions.
const (
	AttrConnectionID   = "connectionId"
	AttrUserID         = "userId"
	AttrConversationID = "conversationId"
	AttrMessageID      = "messageId"
	AttrPromptID       = "promptId"
	AttrUpdatedAt      = "updatedAt"
	AttrExpiresAt      = "expiresAt"
	AttrUploadID       = "uploadId"
	// AttrUsageKey is "<YYYY-MM-DD>#<model>" for a usage row,
	// "<YYYY-MM-DD>#" for the user's daily quota counter and "live" for
	// the set of the user's running replies.
	AttrUsageKey = "day"
)

// IndexConversationsByUpdated lists a user's conversations newest first.
const IndexConversationsByUpdated = "byUpdatedAt"

var (
	Connections = Table{
		ID:           "Connections",
		EnvVar:       config.ConnectionsTable,
		PartitionKey: Key{AttrConnectionID, String},
		TTLAttribute: AttrExpiresAt,
	}
	Conversations = Table{
		ID:           "Conversations",
		EnvVar:       config.ConversationsTable,
		PartitionKey: Key{AttrUserID, String},
		SortKey:      &Key{AttrConversationID, String},
		Indexes: []Index{{
			Name:         IndexConversationsByUpdated,
			PartitionKey: Key{AttrUserID, String},
			SortKey:      &Key{AttrUpdatedAt, String},
		}},
	}
	Messages = Table{
		ID:           "Messages",
		EnvVar:       config.MessagesTable,
		PartitionKey: Key{AttrConversationID, String},
		SortKey:      &Key{AttrMessageID, String},
	}
	Prompts = Table{
		ID:           "Prompts",
		EnvVar:       config.PromptsTable,
		PartitionKey: Key{AttrUserID, String},
		SortKey:      &Key{AttrPromptID, String},
	}
	Usage = Table{
		ID:           "Usage",
		EnvVar:       config.UsageTable,
		PartitionKey: Key{AttrUserID, String},
		SortKey:      &Key{AttrUsageKey, String},
	}
	// Replies holds the live state of each reply, keyed by the assistant
	// message's id (the only id stop and resume carry): its owner and
	// conversation, the connections listening, a stop request, and, once
	// it ended, where the stored message is. Items expire some days after
	// their reply ended.
	Replies = Table{
		ID:           "Replies",
		EnvVar:       config.RepliesTable,
		PartitionKey: Key{AttrMessageID, String},
		TTLAttribute: AttrExpiresAt,
	}
)

// Uploads holds a user's attachments (their objects are in the uploads
// bucket): pending until checked, then ready or rejected, and the message
// that carries one once it is sent. One that no message carries expires
// a day after it was started.
var Uploads = Table{
	ID:           "Uploads",
	EnvVar:       config.UploadsTable,
	PartitionKey: Key{AttrUserID, String},
	SortKey:      &Key{AttrUploadID, String},
	TTLAttribute: AttrExpiresAt,
}

// All lists every table in a stable order.
var All = []Table{Connections, Conversations, Messages, Prompts, Usage, Replies, Uploads}

// The uploads bucket holds each attachment's object under UploadKeyPrefix
// and its upload id. An object is written (through a presigned POST whose
// policy pins the tag) tagged UploadTagKey=UploadTagPending, and the
// bucket's lifecycle expires objects so tagged UploadExpiryDays after they
// were written; sending a message that carries one retags it
// UploadTagKey=UploadTagAttached, and then it stays until its conversation
// is deleted.
const (
	UploadKeyPrefix   = "uploads/"
	UploadTagKey      = "buddy-attached"
	UploadTagPending  = "no"
	UploadTagAttached = "yes"
	UploadExpiryDays  = 1
)
