package dynamodblocal

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// DynamoDB Local 1.25.1 cannot be told which address to listen on: no
// option of its command line (-help lists them all), no Java or Jetty 9.4
// system property. Its DynamoDBProxyServer builds Jetty's Server(port),
// whose one connector has no host and so binds every interface, IPv4 and
// IPv6. It has no authentication either (any signature will do), so run as
// `java -jar DynamoDBLocal.jar`, anyone who can reach the machine could
// read and write its data.
//
// Its library folder ships Jetty's XML configuration (jetty-xml, on the
// jar's manifest Class-Path), which builds and calls Java objects from an
// XML file with nothing but the Java runtime: no compiler, no class of
// ours. loopbackConfig is such a file. It does what the jar's main does,
// less telemetry (which DDB_LOCAL_TELEMETRY=0 turns off anyway): it builds
// the server with ServerRunner.createServerFromCommandLineArgs from the
// usual command line, sets the host of the Jetty connector inside it (a
// private field, read by reflection) to 127.0.0.1, and starts it.
//
// That field's name is DynamoDB Local 1.25.1's, pinned by
// infra/package-lock.json. A version without it fails before anything
// listens: the JVM exits and Start quotes Jetty's error; it never falls
// back to every interface (TestListensOnLoopbackOnly would say so too).

// loopbackHost is the one address DynamoDB Local listens on.
const loopbackHost = "127.0.0.1"

// loopbackConfig is the Jetty XML configuration that starts DynamoDB Local
// with the command line args on loopbackHost only.
func loopbackConfig(args []string) []byte {
	var items bytes.Buffer
	for _, a := range args {
		items.WriteString("\n        <Item>")
		_ = xml.EscapeText(&items, []byte(a)) // a bytes.Buffer never fails
		items.WriteString("</Item>")
	}
	return fmt.Appendf(nil, loopbackTemplate, items.String(), loopbackHost)
}

const loopbackTemplate = `<?xml version="1.0"?>
<!DOCTYPE Configure PUBLIC "-//Jetty//Configure//EN" "http://www.eclipse.org/jetty/configure_9_3.dtd">
<Configure class="java.lang.Object">
  <Call id="ddb" class="com.amazonaws.services.dynamodbv2.local.main.ServerRunner" name="createServerFromCommandLineArgs">
    <Arg>
      <Array type="java.lang.String">%s
      </Array>
    </Arg>
  </Call>
  <Call class="java.lang.Class" name="forName">
    <Arg>com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer</Arg>
    <Call id="serverField" name="getDeclaredField">
      <Arg>server</Arg>
      <Call name="setAccessible"><Arg type="boolean">true</Arg></Call>
    </Call>
  </Call>
  <Ref refid="serverField">
    <Call id="jetty" name="get"><Arg><Ref refid="ddb"/></Arg></Call>
  </Ref>
  <Ref refid="jetty">
    <Call id="connectors" name="getConnectors"/>
  </Ref>
  <Call class="java.lang.reflect.Array" name="get">
    <Arg><Ref refid="connectors"/></Arg>
    <Arg type="int">0</Arg>
    <Set name="host">%s</Set>
  </Call>
  <Ref refid="ddb"><Call name="start"/></Ref>
</Configure>
`
