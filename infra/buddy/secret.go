package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// SecretPlaceholder is the api_key the created secret starts with. The
// runtime treats a key without the sk- prefix as "not configured", and the
// operator replaces it with `aws secretsmanager put-secret-value`.
const SecretPlaceholder = "REPLACE_ME"

// newSecret declares the secret holding {"api_key": "..."},
// or, with adoptSecret=true, references an existing one by name.
//
// A created secret never has its value in the template: Secrets Manager
// generates it from a template holding only the placeholder (the generated
// random "unused" field is a by-product of the API, which needs a key to
// generate). It is retained on stack deletion in every stage, so the key
// the operator stored is never lost; a later deploy then adopts it.
//
// It returns the secret and the ARN its IAM policy names: the secret's ARN,
// or for an adopted one its partial ARN (no random suffix; Secrets Manager
// accepts it as a secret id) followed by "-??????", which matches exactly
// the six characters Secrets Manager appends: the narrowest pattern short
// of looking the secret up at synth time (which needs credentials).
func newSecret(stack awscdk.Stack, s Settings) (awssecretsmanager.ISecret, string) {
	if s.AdoptSecret {
		secret := awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String("Secret"), jsii.String(s.SecretName))
		return secret, *secret.SecretArn() + "-??????"
	}
	secret := awssecretsmanager.NewSecret(stack, jsii.String("Secret"), &awssecretsmanager.SecretProps{
		SecretName:  jsii.String(s.SecretName),
		Description: jsii.String(`Anthropic API key of Buddy as {"api_key":"sk-..."}; set with aws secretsmanager put-secret-value`),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"api_key":"` + SecretPlaceholder + `"}`),
			GenerateStringKey:    jsii.String("unused"),
			ExcludePunctuation:   jsii.Bool(true),
			PasswordLength:       jsii.Number(16),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	return secret, *secret.SecretArn()
}
