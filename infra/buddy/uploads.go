package buddy

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// The uploads bucket holds the attachments' objects (DESIGN §9): the
// browser writes each one straight to S3 with a presigned POST made by the
// conversation API, the conversation API checks and deletes them, the
// message function reads them for the model and marks them attached. The
// bytes never pass through a function's request or response.

// S3 object actions, as IAM names them. DeleteObjects (the batch call) has
// no action of its own: IAM checks s3:DeleteObject for each key.
const (
	s3GetObject        = "s3:GetObject"
	s3PutObject        = "s3:PutObject"
	s3PutObjectTagging = "s3:PutObjectTagging"
	s3DeleteObject     = "s3:DeleteObject"
	s3ListBucket       = "s3:ListBucket"
)

// UploadsAccessLogPrefix is where the uploads bucket's server access logs
// go in the access-log bucket.
const UploadsAccessLogPrefix = "uploads-bucket/"

// UploadsCorsMaxAgeSeconds is how long a browser may cache the bucket's
// answer to a preflight.
const UploadsCorsMaxAgeSeconds = 3600

// bucketAccess is what one function may do with the uploads bucket's
// objects under manifest.UploadKeyPrefix (never another key), or with the
// bucket itself when onBucket, under an IAM Condition block when
// condition is set.
type bucketAccess struct {
	fn        manifest.Function
	actions   []string
	condition map[string]any
	onBucket  bool
}

// attachedTagOnly lets a PutObjectTagging through only when the request's
// tag set is exactly manifest.UploadTagKey=manifest.UploadTagAttached:
// every key it sets is that one (ForAllValues), and that key's value is
// "yes". An empty tag set fails the second test (the key is absent), so
// the message function cannot untag an object either, nor set it back to
// pending (which the lifecycle would expire).
var attachedTagOnly = map[string]any{
	"StringEquals": map[string]any{
		"s3:RequestObjectTag/" + manifest.UploadTagKey: manifest.UploadTagAttached,
	},
	"ForAllValues:StringEquals": map[string]any{
		"s3:RequestObjectTagKeys": []string{manifest.UploadTagKey},
	},
}

// uploadAccesses is every permission on the uploads bucket: only these two
// functions can touch it, each with the least it needs
// (lambda/uploads/bucket.go).
var uploadAccesses = []bucketAccess{
	// The upload routes (httpapi). A presigned POST is authorized as its
	// signer, this role: PutObject for the object, PutObjectTagging
	// because the POST sets its pending tag. complete's checks HEAD the
	// object and read its first bytes (GetObject covers HEAD and ranged
	// GETs), and GET /uploads/{id} presigns a GET for thumbnails. A
	// rejected upload's object, DELETE /uploads/{id} and a deleted
	// conversation's uploads are deleted (DeleteObject, also for the batch
	// DeleteObjects).
	{manifest.ConversationAPI, []string{s3PutObject, s3PutObjectTagging, s3GetObject, s3DeleteObject}, nil, false},
	// Without ListBucket, S3 answers a HEAD of a missing key 403 instead
	// of 404, and "nothing was uploaded yet" could not be told from a
	// refusal. It lists keys (upload ids), never an object's content.
	{manifest.ConversationAPI, []string{s3ListBucket}, nil, true},
	// Reply jobs read a turn's attachments for the model.
	{manifest.WebSocketMessage, []string{s3GetObject}, nil, false},
	// sendMessage marks the uploads it carries attached, so that the
	// lifecycle no longer expires them; it can set nothing else.
	{manifest.WebSocketMessage, []string{s3PutObjectTagging}, attachedTagOnly, false},
}

// usesUploadsBucket reports whether fn has any access to the uploads
// bucket, and so gets its name as UPLOADS_BUCKET.
func usesUploadsBucket(fn manifest.Function) bool {
	for _, a := range uploadAccesses {
		if a.fn.Name == fn.Name {
			return true
		}
	}
	return false
}

// grantUploads gives role fn's rows of uploadAccesses, each on the objects
// under manifest.UploadKeyPrefix alone.
func grantUploads(role awsiam.Role, fn manifest.Function, r *Resources) {
	for _, a := range uploadAccesses {
		if a.fn.Name != fn.Name {
			continue
		}
		resource := r.UploadsBucket.ArnForObjects(jsii.String(manifest.UploadKeyPrefix + "*"))
		if a.onBucket {
			resource = r.UploadsBucket.BucketArn()
		}
		props := &awsiam.PolicyStatementProps{
			Actions:   jsii.Strings(a.actions...),
			Resources: &[]*string{resource},
		}
		if a.condition != nil {
			props.Conditions = &a.condition
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(props))
	}
}

// newUploadsBuckets declares the uploads bucket and the bucket its server
// access logs go to.
//
// The uploads bucket:
//   - is private: Block Public Access (all four settings), ACLs disabled
//     (bucket owner enforced), and no bucket policy grants anyone
//     anything; the two functions' roles (uploadAccesses) are the only
//     principals that can reach it;
//   - takes TLS requests only (enforceSSL; TLS 1.2 at least): a
//     plain-HTTP request, presigned or not, is denied;
//   - encrypts objects with the AWS-managed key aws/s3 (SSE-KMS, as the
//     tables use aws/dynamodb: key use is logged in CloudTrail, no key to
//     administer, and the key policy lets any principal of the account
//     that may use the bucket use it through S3, so the roles need no KMS
//     statement); an S3 Bucket Key keeps the KMS requests to a few per
//     hour;
//   - is not versioned: an upload's object is written once (its key is a
//     new upload id, the POST policy pins it) and never overwritten, only
//     retagged and deleted; versions would only keep deleted uploads,
//     which Buddy promises to delete (DESIGN §9, §12);
//   - answers browsers from the web app's origins (the HTTP API's
//     corsAllowOrigins): POST for the presigned upload, GET for thumbnails
//     through presigned GET URLs;
//   - expires objects still tagged pending (never attached to a message)
//     manifest.UploadExpiryDays after they were written, and aborts
//     incomplete multipart uploads after a day (presigned POSTs are single
//     requests; this keeps stray parts from ever being billed);
//   - logs every request to the access-log bucket;
//   - is retained in prod; in dev it goes with the stack, and CloudFormation
//     deletes only an empty bucket: empty it first (docs/deploy.md). No
//     autoDeleteObjects, which would add a custom-resource function.
//
// The access-log bucket has the same protections, S3-managed encryption
// (the only one S3 server access logging writes to), and keeps logs for
// the stage's log retention (logRetentionDays).
func newUploadsBuckets(stack awscdk.Stack, s Settings) (uploads, accessLogs awss3.Bucket) {
	if manifest.UploadExpiryDays < 1 {
		panic(fmt.Sprintf("manifest.UploadExpiryDays is %d: S3 expires objects after a whole number of days, at least 1", manifest.UploadExpiryDays))
	}
	accessLogs = awss3.NewBucket(stack, jsii.String("UploadsAccessLogBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		Versioned:         jsii.Bool(false),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("expire-access-logs"),
			Expiration:                          awscdk.Duration_Days(jsii.Number(s.LogRetentionDays)),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		RemovalPolicy: removalPolicy(s),
	})
	uploads = awss3.NewBucket(stack, jsii.String("UploadsBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:        awss3.BucketEncryption_KMS_MANAGED,
		BucketKeyEnabled:  jsii.Bool(true),
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		Versioned:         jsii.Bool(false),
		Cors: &[]*awss3.CorsRule{{
			AllowedOrigins: jsii.Strings(s.CorsAllowOrigins...),
			AllowedMethods: &[]awss3.HttpMethods{awss3.HttpMethods_POST, awss3.HttpMethods_GET},
			// A multipart/form-data POST (the browser sets the type and
			// its boundary) and a plain GET send no other header; every
			// field of the presigned POST travels in the form.
			AllowedHeaders: jsii.Strings("content-type"),
			ExposedHeaders: jsii.Strings("ETag"),
			MaxAge:         jsii.Number(UploadsCorsMaxAgeSeconds),
		}},
		LifecycleRules: &[]*awss3.LifecycleRule{
			{
				Id:         jsii.String("expire-unattached-uploads"),
				Prefix:     jsii.String(manifest.UploadKeyPrefix),
				TagFilters: &map[string]any{manifest.UploadTagKey: manifest.UploadTagPending},
				Expiration: awscdk.Duration_Days(jsii.Number(manifest.UploadExpiryDays)),
			},
			{
				// S3 refuses this action in a rule with a tag filter.
				Id:                                  jsii.String("abort-incomplete-multipart-uploads"),
				AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
			},
		},
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String(UploadsAccessLogPrefix),
		RemovalPolicy:          removalPolicy(s),
	})
	return uploads, accessLogs
}

// uploadsBucketEnv is UPLOADS_BUCKET for fn: the bucket's name for the
// functions of uploadAccesses, nothing for the others.
func uploadsBucketEnv(fn manifest.Function, r *Resources, env map[string]string) {
	if usesUploadsBucket(fn) {
		env[config.UploadsBucket] = *r.UploadsBucket.BucketName()
	}
}
