package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/jsii-runtime-go"
)

// newIssuer returns the JWT issuer and audience both APIs check. By default
// the stack creates a Cognito user pool (users are created by an
// administrator; no self sign-up) and a public client for a browser page
// (no secret: a browser cannot keep one; SRP sign-in, plus the admin flow,
// which needs IAM credentials, so an operator can get a token with the AWS
// CLI). Tokens: the ID
// token's aud is the client id. With jwtIssuer and jwtAudience in the
// context, an existing OIDC issuer is used instead and no Cognito resource
// is declared.
func newIssuer(stack awscdk.Stack, s Settings) (awscognito.UserPool, awscognito.UserPoolClient, string, string) {
	if !s.UsesCognito() {
		return nil, nil, s.JWTIssuer, s.JWTAudience
	}
	pool := awscognito.NewUserPool(stack, jsii.String("UserPool"), &awscognito.UserPoolProps{
		UserPoolName:      jsii.String("buddy-" + s.Stage),
		SelfSignUpEnabled: jsii.Bool(false),
		SignInAliases:     &awscognito.SignInAliases{Email: jsii.Bool(true)},
		AutoVerify:        &awscognito.AutoVerifiedAttrs{Email: jsii.Bool(true)},
		PasswordPolicy: &awscognito.PasswordPolicy{
			MinLength:            jsii.Number(12),
			RequireLowercase:     jsii.Bool(true),
			RequireUppercase:     jsii.Bool(true),
			RequireDigits:        jsii.Bool(true),
			RequireSymbols:       jsii.Bool(true),
			TempPasswordValidity: awscdk.Duration_Days(jsii.Number(3)),
		},
		Mfa:             awscognito.Mfa_OPTIONAL,
		MfaSecondFactor: &awscognito.MfaSecondFactor{Otp: jsii.Bool(true), Sms: jsii.Bool(false)},
		AccountRecovery: awscognito.AccountRecovery_EMAIL_ONLY,
		FeaturePlan:     awscognito.FeaturePlan_ESSENTIALS,
		// Production users are kept if the stack goes.
		DeletionProtection: jsii.Bool(s.Prod),
		RemovalPolicy:      removalPolicy(s),
	})
	client := pool.AddClient(jsii.String("WebClient"), &awscognito.UserPoolClientOptions{
		UserPoolClientName:         jsii.String("buddy-web"),
		GenerateSecret:             jsii.Bool(false),
		AuthFlows:                  &awscognito.AuthFlow{UserSrp: jsii.Bool(true), AdminUserPassword: jsii.Bool(true)},
		DisableOAuth:               jsii.Bool(true),
		PreventUserExistenceErrors: jsii.Bool(true),
		EnableTokenRevocation:      jsii.Bool(true),
		IdTokenValidity:            awscdk.Duration_Hours(jsii.Number(1)),
		AccessTokenValidity:        awscdk.Duration_Hours(jsii.Number(1)),
		RefreshTokenValidity:       awscdk.Duration_Days(jsii.Number(30)),
	})
	issuer := "https://cognito-idp." + s.Region + ".amazonaws.com/" + *pool.UserPoolId()
	return pool, client, issuer, *client.UserPoolClientId()
}
