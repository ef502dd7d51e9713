// KeystoreServer is the tests' Java TLS server: it serves the key and chain
// under one alias of a keystore (JKS or PKCS12) the way a Java application
// server does, and re-reads the keystore on SIGHUP (a bad keystore is logged
// and the old one kept). Passwords are read from files, first line.
//
// usage: java KeystoreServer PORT KEYSTORE TYPE ALIAS STOREPASS_FILE KEYPASS_FILE
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.*;
import java.security.cert.X509Certificate;
import javax.net.ssl.*;

public class KeystoreServer {
    static volatile SSLContext context;
    static String path, type, alias, storePassFile, keyPassFile;

    static char[] password(String file) throws IOException {
        String s = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
        int nl = s.indexOf('\n');
        return (nl < 0 ? s : s.substring(0, nl)).replace("\r", "").toCharArray();
    }

    static SSLContext load() throws Exception {
        KeyStore ks = KeyStore.getInstance(type);
        try (InputStream in = new FileInputStream(path)) {
            ks.load(in, password(storePassFile));
        }
        PrivateKey key = (PrivateKey) ks.getKey(alias, password(keyPassFile));
        java.security.cert.Certificate[] certs = ks.getCertificateChain(alias);
        if (key == null || certs == null) {
            throw new IllegalStateException("no key entry " + alias + " in " + path);
        }
        X509Certificate[] chain = new X509Certificate[certs.length];
        for (int i = 0; i < certs.length; i++) chain[i] = (X509Certificate) certs[i];
        X509KeyManager km = new X509ExtendedKeyManager() {
            public String[] getClientAliases(String t, Principal[] p) { return null; }
            public String chooseClientAlias(String[] t, Principal[] p, Socket s) { return null; }
            public String[] getServerAliases(String t, Principal[] p) { return new String[] {alias}; }
            public String chooseServerAlias(String t, Principal[] p, Socket s) { return alias; }
            public String chooseEngineServerAlias(String t, Principal[] p, SSLEngine e) { return alias; }
            public X509Certificate[] getCertificateChain(String a) { return chain; }
            public PrivateKey getPrivateKey(String a) { return key; }
        };
        SSLContext c = SSLContext.getInstance("TLS");
        c.init(new KeyManager[] {km}, null, null);
        System.out.println("loaded " + alias + " from " + path + ": " + chain[0].getSubjectX500Principal() + " serial " + chain[0].getSerialNumber().toString(16));
        return c;
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        path = args[1]; type = args[2]; alias = args[3]; storePassFile = args[4]; keyPassFile = args[5];
        context = load();
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), sig -> {
            try {
                context = load();
            } catch (Exception e) {
                System.out.println("reload failed, keeping the old keystore: " + e);
            }
        });
        ServerSocket ss = new ServerSocket(port, 50, InetAddress.getLoopbackAddress());
        System.out.println("listening on " + port);
        System.out.flush();
        while (true) {
            Socket raw = ss.accept();
            new Thread(() -> {
                try (SSLSocket s = (SSLSocket) context.getSocketFactory().createSocket(raw, null, raw.getPort(), true)) {
                    s.setUseClientMode(false);
                    s.setSoTimeout(5000);
                    s.startHandshake();
                    s.getInputStream().read();
                } catch (Exception e) {
                    // a probe that closes after the handshake
                }
            }).start();
        }
    }
}
