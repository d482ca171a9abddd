/*
 * tr31_format.h - TR-31 / X9.143 key block cases for tests/tr31_format_test.c.
 *
 * Copied from shared/vectors/payment-crypto.json: every "tr31_header_decode"
 * and "tr31_keyblock" case, each with its "id" and "source" strings. The
 * expected fields are the header's own characters and the vectors' outputs
 * (optional_block_KS, KC/KP KCVs, TS); key_len and pad_len come from the
 * vectors' "key" output and "padding_in_payload" note (0 when absent).
 */
#ifndef TR31_FORMAT_VECTORS_H
#define TR31_FORMAT_VECTORS_H

#include <stddef.h>

struct tr31_fmt_opt {
	const char *id;
	const char *data;
};

struct tr31_fmt_case {
	const char *id;
	const char *source;
	const char *key_block;
	const char *key_hex; /* published key, NULL for decode-only cases */
	const char *pad_hex; /* published payload padding, NULL when not given */
	/* Expected header: version, usage, algorithm, mode, key version, exportability. */
	char version;
	const char *usage;
	char algorithm;
	char mode;
	const char *key_version;
	char exportability;
	size_t header_len;
	size_t payload_len; /* encrypted payload, bytes */
	size_t n_opt;
	struct tr31_fmt_opt opts[4];
	/* Vector outputs about optional blocks, NULL when the vector gives none. */
	const char *out_ks;
	const char *out_kc_kcv;
	const char *out_kp_kcv;
	const char *out_ts;
};

static const struct tr31_fmt_case tr31_fmt_cases[] = {
    {
        .id = "tr31-openemv-test1-format_a",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites example data generated"
                  " using a Thales payShield 10k HSM)",
        .key_block = "A0072K0TN00N0000F40D5672C6D0EC86F860BA88D44D00F0CA9A8CE8CD2F640287A9A9EB",
        .key_hex = "5DB50B454F8389ADCE573BE50861F2BF",
        .pad_hex = "89BC81604BDF",
        .version = 'A',
        .usage = "K0",
        .algorithm = 'T',
        .mode = 'N',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test1-format_b",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites example data generated"
                  " using a Thales payShield 10k HSM)",
        .key_block =
            "B0080K0TN00N00001C414014375212C24995E405B5EE052CB92B67F455EA2680F6751088F9F1C228",
        .key_hex = "5DB50B454F8389ADCE573BE50861F2BF",
        .pad_hex = "F786DF9F6A54",
        .version = 'B',
        .usage = "K0",
        .algorithm = 'T',
        .mode = 'N',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test1-format_c",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites example data generated"
                  " using a Thales payShield 10k HSM)",
        .key_block = "C0072K0TN00N0000C9B875FF7A5316BF221C09ED52080DE0B45632A4EA9CE87699CB565E",
        .key_hex = "5DB50B454F8389ADCE573BE50861F2BF",
        .pad_hex = "345A7B73542D",
        .version = 'C',
        .usage = "K0",
        .algorithm = 'T',
        .mode = 'N',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test2-ascii",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites TR-31:2018, A.7.2.1)",
        .key_block = "A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "720DF563BB07",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test3-ascii",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites TR-31:2018, A.7.2.2)",
        .key_block =
            "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1C2965473CE2",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test4-ascii",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites TR-31:2018, A.7.3.1)",
        .key_block =
            "C0096B0TX12S0100KS1800604B120F9292800000BFB9B689CB567E66FC3FEE5AD5F52161FC6545B9"
            "D60989015D02155C",
        .key_hex = "EDB380DD340BC2620247D445F5B8D678",
        .pad_hex = "8546A8ED98D1",
        .version = 'C',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "12",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 24,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
        .out_ks = "00604B120F9292800000",
    },
    {
        .id = "tr31-openemv-test6-ascii",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites TR-31:2018, A.7.4)",
        .key_block =
            "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A2"
            "7E8E31DA05F7425509593D03A457DC34",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1C2965473CE206BB855B01533782",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'A',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test7-ascii",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites example data generated"
                  " using a Thales payShield 10k HSM)",
        .key_block =
            "D0112B0TN00N000037DB9B046B7B0048785690759580ABC3B9842AB4BB7717B49E92528E575785D8"
            "123559376A2553B27BE94F054F4E971C",
        .key_hex = "1FA1F7CEC798D91545DA8AE0C7796BD9",
        .pad_hex = "6B58C03B829BF4CC37B8B93C17F6",
        .version = 'D',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'N',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test11-ascii",
        .source =
            "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites ANSI X9.143:2021, 8.1)",
        .key_block =
            "D0144P0AE00E00002C77FA3F4A553BED6E88AE5C172A4166E3D4ACA8E2AC71C158A476FAC12C13C3"
            "829DE55D3AB54C48F4C4FEF7AC75E90FC47F1B77E7B19A73ED46E64410082557",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1A87BBFA2CFE78D383E5F4C6AA83473C1C2965473CE206BB855B01533782",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'A',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 48,
        .n_opt = 0,
    },
    {
        .id = "tr31-openemv-test16-ascii",
        .source = "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites ANSI X9.143:2021, 8.4."
                  "2)",
        .key_block =
            "B0120B0TX12S0100KS1800604B120F929280000015CEB14B76D551F21EC43A75390FA118A98C6CB0"
            "49E3B9E864A5F4A8B9A5108A6DB5635C95B042D7",
        .key_hex = "E8BC63E5479455E26577F715D587FE68",
        .pad_hex = "7CB920D261E9F3AA30111D18CC4C",
        .version = 'B',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "12",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 32,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
        .out_ks = "00604B120F9292800000",
    },
    {
        .id = "tr31-openemv-test17-ascii",
        .source =
            "openemv/tr31@d230c2846686 test/tr31_decrypt_test.c (cites ANSI X9.143:2021, 8.5)",
        .key_block =
            "D3776S0RS00N0400CT0004050000MIIDszCCApugAwIBAgIIKpD5FKMfCZEwDQYJKoZIhvcNAQELBQAw"
            "LTEXMBUGA1UECgwOQWxwaGEgTWVyY2hhbnQxEjAQBgNVBAMMCVNhbXBsZSBDQTAeFw0yMDA4MTUwMjE0"
            "MTBaFw0yMTA4MTUwMjE0MTBaME8xFzAVBgNVBAoMDkFscGhhIE1lcmNoYW50MR8wHQYDVQQLDBZUTFMg"
            "Q2xpZW50IENlcnRpZmljYXRlMRMwEQYDVQQDDAoxMjM0NTY3ODkwMIIBIjANBgkqhkiG9w0BAQEFAAOC"
            "AQ8AMIIBCgKCAQEA1sRg+wEuje3y14V0tFHpvxxpY/fyrldB0nRctBDn4AvkBfyJuDLG59vqkGXVd8J8"
            "YQdwEHZJrVq+7B8rjtM6PMoyH/7QAZZAC7tw740P4cfen1IryubZVviV9QUp+gHToelZfr1rfIsuEGhz"
            "o6UhwY70kkS87/rYHCVathZEjMmvUIEdpzg0PZ2+Heg6D35OQ70I+np+BsEQf71Zr+d2iKqVGEd50l8t"
            "bn4W3A4rOyUERPTaACwS9rvdF7nlmTqSI5ybN6lmm37a71h77n6M54aaw2KkJYWVo+1stUTyFVsv/YBs"
            "9aylbBHQOYqp/U2tB0TxM58QYGzyaWvNqbFzOQIDAQABo4G0MIGxMAkGA1UdEwQCMAAwDgYDVR0PAQH/"
            "BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMCMB0GA1UdDgQWBBR837QRAGx5uL9xDnRjr9L9WSBSlzAf"
            "BgNVHSMEGDAWgBSlXhVYy9bic9OLnRsxsFgKQQbLmTA/BgNVHR8EODA2MDSgMqAwhi5odHRwOi8vY3Js"
            "LmFscGhhLW1lcmNoYW50LmV4YW1wbGUvU2FtcGxlQ0EuY3JsMA0GCSqGSIb3DQEBCwUAA4IBAQCH6Jus"
            "IBSkRDqzAohaSoJVAEwQGMdcUSQWDfMyJjZqkOep1kT8Sl7LolFmmmVRJdkTWZe4PxBfQUc/eIql9BIx"
            "90506B+j9aoVA7212OExAid78GgqKA6JoalhYQKRta9ixY8iolydTYyEYpegA1jFZavMQma4ZGwX/bDJ"
            "Wr4+cJYxJXWaf67g4AMqHaWC8J60MVjrrBe9BZ0ZstuIlNkktQUOZanqxqsrFeqz02ibwTwNHtaHQCzt"
            "B4KgdTkrTNahkqeq6xjafDoTllNo1EddajnbA/cVzF9ZCNigDtg5chXHWIQbgEK7HmU3sY3/wd2Bh1Kd"
            "F3+vpN+5iZMRNv7ZKP1001D77F007724TS1320200818221218ZPB0D000000000A7C9F8FA80A4BA35"
            "55CA071503CE1A6133649BB18A5A9130492172CA4E7360C060379738A28503230BDB04EED4E9B209"
            "643867613F5090A0E0392C21EB74747795B397315AB5D1F49A33693533E73AC0BEDA172FF530BE98"
            "6F5EC1C25F481F05A69DF8B33624E621AF35FFAEC06C2005F37872923EEBFF38182FB290BFBA2A9F"
            "F88AD36278625868FA38A0DC9A53E0202C4D1DEF3B9DACFD249DA85DE3CCF92A8E6C0F8CDF8DE5FD"
            "17331BE5D580F210CE4EA1B01F1A0BFD6EFF410A71661234AD363D4B60885F00358729900FF95D7C"
            "87D3DE6FB4C83B24C8C7BB5A2E3763E9CBA50A0E3A8C1AF908699952BCB6B038FEA9D13FDE08801D"
            "C0573E55B842219DBF6D5DA5F028C73793AA718D01DE93D85AE06E7E08DC94ADB4EAA51B6DDAEA37"
            "50D0B77467D2982AC96F3EB28889715CBB81C71E97A60E58D44977C1D8220A422E98E17ACEBF72A8"
            "A18D4E7FC1695F442860E6063E8BB6BFF2184F77E635C2F5A02DADE4897A3B1374145C3AD6DF06C0"
            "D556F5DE9454CF40C4FC8922DFE245F868E668F1DA5BE0079F9D1D1861CA4B5E6C782F296098C07C"
            "B43784D64D8B8557410E5BAFF59333A791FF030EB0661C0590A665B50A3A727217100C4550B2AD9C"
            "96C658D6731C09B55DFAE665952E2913A4E090F45DCEB45D6683C3FC15E3A4CA49C7F2E684B3580D"
            "B47A53E5BDB228FAD250C584548D5DEDBB45004B5E0E75C37ACE8167CC6D9574A74876718D2F4299"
            "6622B8EC0B895FF7A6739E4CF64B7F03FABDFBC0A565CB3455736D2B4E2B64D6EC175A569F78DB7A"
            "CB331B00804279677F4BFD0C35CBF0A38D646AA9051961123E16075A06B6331A9A30601AF3FD6A89"
            "AD9924AE1D9EC2FE0FF3B3A1B3E3E13D09B08B80D91F9EDF51B2E6D8DABD0FEB6C5C1085A11FA6A9"
            "8CE8CC09E36C8A24D981A74E140EF30912E8CDBBE2A0CBD52B40C72D1958F4BB2F49BCBABBD80116"
            "FEF21BC91D219EEAEDA4DC11692C624B0836C3137A3BEE4549DEAB750A9DD5ACA7E3F822084783CD"
            "FEEB765EBEB9E3CFF053E8B8D5A1F1854B8AFF6325F10B81C7627D0DA895B1D19FEEF0AE3F3E138E"
            "87C4ADDF0BA53CA40ED0D1452044600FF4838D710F6D03474C317AC306DD7DA169B6C918E999E3A5"
            "0DA1A34DDFCA3899F4469B9E969C0BD144F04B2621AB9E9E18455D526844155309565DA9D1726CD3"
            "A7ACC5FEDEF30DED078547CED31CEF84A31A810FA966F303CB950ACC324AE54BFAB9A04FAD93C38C"
            "D6239D7FAD2C59A9B71171F5676DA8ED3A3FFB5287DF141C1F5CE972CA26857AD3039B82B625960A"
            "7859F19EF0E94F8C4680A33189870942139DDFA64D5095FA46EB49085DB99EFC9C6A3F3A290DB959"
            "2F8B76B017113F7D1FEFE52E70FE26574467257CFEEA6D3F2BBD1BAEDDDCE3468827568A78536DE7"
            "8E7AC872247BDB120A55DDE16A3D0CFBB7D097AD7AD0FA2671390D8D532A3915F5B3163FF1EE2355"
            "3D83A1109980859C420F754BC74ECD1449B9A60EA252D3F035D715BCBD491485261C51238926E290"
            "BD7F0617E90BD6AB8B46443B05C28D61F8BB897417926623AF91B499C661629795165EF56460850F"
            "1D4F9CE199C2B9E21F1884A4D14644DAE5FB963B880EC2FFF70021772D524289D068A24F0283C42F"
            "0B4779996D2CF60EE6E45C364E2547DB92361B3DBCEDBAA96B9F10A1AAA1AB23CDE1B75F3299D454"
            "4787A07F6A9F7127",
        .key_hex =
            "308204A40201000282010100D6C460FB012E8DEDF2D78574B451E9BF1C6963F7F2AE5741D2745CB4"
            "10E7E00BE405FC89B832C6E7DBEA9065D577C27C610770107649AD5ABEEC1F2B8ED33A3CCA321FFE"
            "D00196400BBB70EF8D0FE1C7DE9F522BCAE6D956F895F50529FA01D3A1E9597EBD6B7C8B2E106873"
            "A3A521C18EF49244BCEFFAD81C255AB616448CC9AF50811DA738343D9DBE1DE83A0F7E4E43BD08FA"
            "7A7E06C1107FBD59AFE77688AA95184779D25F2D6E7E16DC0E2B3B250444F4DA002C12F6BBDD17B9"
            "E5993A92239C9B37A9669B7EDAEF587BEE7E8CE7869AC362A4258595A3ED6CB544F2155B2FFD806C"
            "F5ACA56C11D0398AA9FD4DAD0744F1339F10606CF2696BCDA9B17339020301000102820101009A61"
            "93ED1ACE624BF7D2A1266130B8BC1E2A4C284214BCB89E15F345A519695E62CD42D9A4C52B62241D"
            "9B2AF8A61BF1D8B5C602AF650AEE3E6BF184182912A5FC1AC8111D68E69EA75058407AC03DE6B4CB"
            "060060DC4CC34DF24DAD269D868EA0C6E3044E1963EF906F4F06414E44D3A4757E67570192E9A261"
            "DFB12094AA36476582272EDAB0F56F816D9FA69580B3AB053237135BD1DDDB42AF77E11E1629F5A1"
            "1B22C5E3E2DB3E8767A90B94414898DCCBB47EFE619F0620AC29C389FB464CE9C5E243963E13B6DA"
            "38EFAE1330AEFB54C0D5E2E59B6D7FBE4B3A22EE483F74E74D4A4A25978C65F4AC5829C34260930C"
            "85ECEA1FB24DB52A438D4EB2CF6102818100ED003DEEB8013AF4E4EBE172FE474B23FE2012880584"
            "0C2D277E3E308D5B44527F1ED33C07AF350D5B22B27E082CD101DD2DE54DC8DF8F91D4BA5768EB9E"
            "C5F27DB5D358EA5E0DEE08A535677CB3F765789C9DAE56B7421B9E54525EF928AB2885BF098E8379"
            "99AD0CA3CA6AC642EA9AD1331856B0CCEE5DF01FED1B2F63C3A502818100E7FBDA0A71C926DD51F0"
            "37206D901A297554A39BBC9239794421F1F54D29766E50E016CA5701BDA79AEC543F5066B3730E05"
            "3EA4B5872D25C29673CA8457B07390D11AF23F2247A1133FC2522B96CB02DA77D927FEE666106605"
            "8D1A4D85FE3C1D3418542F24B3982B4DDFB4192E512EDA1BAAAA59955B50945DD083E26E4D050281"
            "8002D4E0E88C3C3F87138119F574C2474C8BC9B84EF5B9E92754F4762BC05499D15E8170C6A3D4DD"
            "0E66CB5854972669ECDAC6A499B44FAF786F91366023888716E9979589D76AFE419CCAD4838302E7"
            "6EC7ED1F1929221161211822CFCDAC45B73B39D81462CFBE1D4A2C5ECBBDC8A8E2E6A2F4A47C8246"
            "4ACB06A69F8F86629D0281804E98A99AF84A2A7CB992255B3B43A3598083189B5F1C3B94B65CB9D9"
            "5E373A04CE29DE0ED7C3A339F1E737F3EB8DA026CF0D3FD81618A25734C23CA0D48DD11E96660237"
            "28E4B857FE698FB0BF4BEBA41FD8931E55E2419A34B694C3E0981136D4BE1DB007F8EB5016FBDF5A"
            "E95D23EC37C13FE54F4CA70F79F4FEFC6FEEE6F1028181008321C2F1E8914C0AE09C418ACFEBB8A7"
            "B86A1E7144182F5145FBA90AF104DE3BC7604D86A831AC2F38DA356C99BC60BEA80E26EC8B7FAF8B"
            "B84A8661EF564BDC65DA0519F5E3CE81FF491CC71DA0813960048B225E61C56684D3CE01AE28A212"
            "C9ACCE946E2AAB80ADD51B00093029C5D52E9AF6C8A3EB861641B00E23636A68",
        .pad_hex = "414243444546",
        .version = 'D',
        .usage = "S0",
        .algorithm = 'R',
        .mode = 'S',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 1344,
        .payload_len = 1200,
        .n_opt = 4,
        .opts =
            {
                {"CT",
                 "00MIIDszCCApugAwIBAgIIKpD5FKMfCZEwDQYJKoZIhvcNAQELBQAwLTEXMBUGA1UECgwOQWxwaGEgTW"
                 "VyY2hhbnQxEjAQBgNVBAMMCVNhbXBsZSBDQTAeFw0yMDA4MTUwMjE0MTBaFw0yMTA4MTUwMjE0MTBaME"
                 "8xFzAVBgNVBAoMDkFscGhhIE1lcmNoYW50MR8wHQYDVQQLDBZUTFMgQ2xpZW50IENlcnRpZmljYXRlMR"
                 "MwEQYDVQQDDAoxMjM0NTY3ODkwMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1sRg+wEuje"
                 "3y14V0tFHpvxxpY/fyrldB0nRctBDn4AvkBfyJuDLG59vqkGXVd8J8YQdwEHZJrVq+7B8rjtM6PMoyH/"
                 "7QAZZAC7tw740P4cfen1IryubZVviV9QUp+gHToelZfr1rfIsuEGhzo6UhwY70kkS87/rYHCVathZEjM"
                 "mvUIEdpzg0PZ2+Heg6D35OQ70I+np+BsEQf71Zr+d2iKqVGEd50l8tbn4W3A4rOyUERPTaACwS9rvdF7"
                 "nlmTqSI5ybN6lmm37a71h77n6M54aaw2KkJYWVo+1stUTyFVsv/YBs9aylbBHQOYqp/U2tB0TxM58QYG"
                 "zyaWvNqbFzOQIDAQABo4G0MIGxMAkGA1UdEwQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCC"
                 "sGAQUFBwMCMB0GA1UdDgQWBBR837QRAGx5uL9xDnRjr9L9WSBSlzAfBgNVHSMEGDAWgBSlXhVYy9bic9"
                 "OLnRsxsFgKQQbLmTA/BgNVHR8EODA2MDSgMqAwhi5odHRwOi8vY3JsLmFscGhhLW1lcmNoYW50LmV4YW"
                 "1wbGUvU2FtcGxlQ0EuY3JsMA0GCSqGSIb3DQEBCwUAA4IBAQCH6JusIBSkRDqzAohaSoJVAEwQGMdcUS"
                 "QWDfMyJjZqkOep1kT8Sl7LolFmmmVRJdkTWZe4PxBfQUc/eIql9BIx90506B+j9aoVA7212OExAid78G"
                 "gqKA6JoalhYQKRta9ixY8iolydTYyEYpegA1jFZavMQma4ZGwX/bDJWr4+cJYxJXWaf67g4AMqHaWC8J"
                 "60MVjrrBe9BZ0ZstuIlNkktQUOZanqxqsrFeqz02ibwTwNHtaHQCztB4KgdTkrTNahkqeq6xjafDoTll"
                 "No1EddajnbA/cVzF9ZCNigDtg5chXHWIQbgEK7HmU3sY3/wd2Bh1KdF3+vpN+5iZMRNv7Z"},
                {"KP", "01D77F007724"},
                {"TS", "20200818221218Z"},
                {"PB", "000000000"},
            },
        .out_kp_kcv = "D77F007724",
        .out_ts = "20200818221218Z",
    },
    {
        .id = "tr31-psec-A0088M3TC00E0000-9AA5BBA6",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "A0088M3TC00E000062C2C14D8785A01A9E8283525CA96F490D0CC6346FC7C2AC1E6FF35446891037"
            "9AA5BBA6",
        .key_hex = "EEEEEEEEEEEEEEEE",
        .pad_hex = "A5C55B18927C39E8D1F1CA0912D0F86F000000000000",
        .version = 'A',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-C0088M3TC00E0000-39F13A31",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "C0088M3TC00E0000A53CF172FE6562E7FDD5E6482E8925DA46F7FFE4D1BAD49EB33A9EDBB96A8A8D"
            "39F13A31",
        .key_hex = "EEEEEEEEEEEEEEEE",
        .pad_hex = "A7C50341DC881B534BDA4D24D5AE513C000000000000",
        .version = 'C',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-A0088M3TC00E0000-F9183122",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "A0088M3TC00E0000BE8AE894906D0B8F6FF555573A3907DC37FF13B12CE1CB8A97A97C8414AE1A8F"
            "F9183122",
        .key_hex = "CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
        .pad_hex = "2F55B7425F15D1BAD821D3B27913",
        .version = 'A',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-B0096M3TC00E0000-6C678808",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "B0096M3TC00E0000D578DACC2286C7D10F20DEA88799CA8A2F44E0CC21226A2158D5DC8FD5C78E62"
            "1327DA956C678808",
        .key_hex = "CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
        .pad_hex = "C0E25D146D4AA03856CBAA622745",
        .version = 'B',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-A0088M3TC00E0000-1D9A356E",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "A0088M3TC00E000022BD7EC46BBE2A6A73389D1BA6DB63120B386F912839F4679C0523399E4D8D0F"
            "1D9A356E",
        .key_hex = "CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
        .pad_hex = "7DB8952110F32129015921DD9FB1",
        .version = 'A',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-B0096M3TC00E0000-DD3AB342",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "B0096M3TC00E0000C7C6FE86A5DE769C20DCA238C52341378B484D544A9764D43963C3B2824AE56C"
            "2D07A565DD3AB342",
        .key_hex = "CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
        .pad_hex = "67721C547A42EDD81F0B95E5BD7E",
        .version = 'B',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-C0088M3TC00E0000-D59FA93A",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "C0088M3TC00E000091FA4978279FD9C218BDCBE9CC62F11A182F828406B67AC61B5573748FCF348F"
            "D59FA93A",
        .key_hex = "CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
        .pad_hex = "6A031EB415860472A30269D70034",
        .version = 'C',
        .usage = "M3",
        .algorithm = 'T',
        .mode = 'C',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-A0072P0TE00E0000-1CEE8701",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block = "A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "720DF563BB07",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-B0080P0TE00E0000-7B8A248E",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1C2965473CE2",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-B0104B0TX12S0100-4B433627",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C473"
            "8A52190E248719E24B433627",
        .key_hex = "E8BC63E5479455E26577F715D587FE68",
        .pad_hex = "30111D18CC4C",
        .version = 'B',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "12",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 24,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
    },
    {
        .id = "tr31-psec-A0088P0TE00E0000-7FE03712",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "A0088P0TE00E00007DD4DD9566DC0E2F956DCAC0FDE9153159539373E9D82D3CD4AFD305A7EF1BA6"
            "7FE03712",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "A24AA77790D1A5296CDE3C825EFE",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-B0120P0TE12E0100-DA3A9754",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "B0120P0TE12E0100KS1800604B120F9292800000E6E28F097CB0350B2EB2DF520947F779FA34D975"
            "9CEE7E0DEEACF8353DB778D47FA4EC20DA3A9754",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "DC816D64184597216FC4A3398558",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "12",
        .exportability = 'E',
        .header_len = 40,
        .payload_len = 32,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
    },
    {
        .id = "tr31-psec-A0112P0TE12E0200-8B2C8CD7",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "A0112P0TE12E0200KS1400604B120F929280PB047A1BB737854CD7AF58A8A1E4506A942277EDA76E"
            "BA6BA228AF62ADDA3AD8799E8B2C8CD7",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "661B502580AB47185B87623954BC",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "12",
        .exportability = 'E',
        .header_len = 40,
        .payload_len = 32,
        .n_opt = 2,
        .opts =
            {
                {"KS", "00604B120F929280"},
                {"PB", ""},
            },
    },
    {
        .id = "tr31-psec-A0088P0TE00E0000-ED79F4E0",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties')",
        .key_block =
            "A0088P0TE00E00007DD4DD9566DC0E2F956DCAC0FDE91531723FD88F18DE071A57189B4D3C483341"
            "ED79F4E0",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "3E9C96383EF2B2ACC15A25CA3C45",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-psec-D0112P0AE00E0000-A457DC34",
        .source = "knovichikhin/psec@90ccbf3ae0ef tests/test_tr31.py test_kb_known_values (cites 'k"
                  "nown values from 3rd parties') | moov-io/tr31@1d689d0e88e4 pkg/tr31/tr31_test.go"
                  " Test_kb_known_values",
        .key_block =
            "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A2"
            "7E8E31DA05F7425509593D03A457DC34",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1C2965473CE206BB855B01533782",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'A',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-A0072P0TE00E0000-1752022B",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block = "A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24D52C8D44AAEDA6D81752022B",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "000000000000",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-B0096P0TB00E0000-0E1EFB5D",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block =
            "B0096P0TB00E0000362D6B7B5D73969D3560CB6EE142206A34C9A0D5736619868843D35054F36B11"
            "C1BFFAA30E1EFB5D",
        .key_hex = "260892192061C8760BDF235E1619B057B334FED0EFA74F32",
        .pad_hex = "000000000000",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'B',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-B0080P0TE00E0000-F31E7CD8",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block =
            "B0080P0TE00E0000A2C7F59BE6B748A73A56D613E9DAFCAB38FD56EB5496120F0E16D23DF31E7CD8",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "000000000000",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-B0080P0TE00E0000-1FC01825",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block =
            "B0080P0TE00E00009AFD3EC2FB89B35F6CAE8889D7777611DFE04DA850A298BFD07667601FC01825",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "000000000000",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 24,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-D0112P0TE00E0000-17D04E35",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block =
            "D0112P0TE00E000013B674A99811C18AB8BCFB26D347F8449E68FC074858D85DC452E43910CDC2A5"
            "E9BFE75DC94415EC0A82072217D04E35",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "0000000000000000000000000000",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-D0112P0TE00E0000-84BABDBE",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block =
            "D0112P0TE00E00004101636D69EDAA41ACA5596D662C3AAC23A14B4305C5D0A434476F50DD68BFDA"
            "0A4EB63DC27DB6DAEA0E6AC684BABDBE",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "0000000000000000000000000000",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-chhil-B0096P0TE00E0000-685A50F5",
        .source = "chhil/TR31Keyblock@13ae8539e5ac src/test/java/org/keyblock/tr31/TR31KeyBlockTest"
                  ".java",
        .key_block =
            "B0096P0TE00E000087468EC5A87BB394D5A1A0BD92CE4275477108CCE6BA8446346D0ECDBAAB72C6"
            "A9D62F8F685A50F5",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8FF039121BEC83D26B",
        .pad_hex = "000000000000",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-warthog-test_x9_143_2021_aes_keyblock_8_1",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_x9_143_2021_aes_keyb"
                  "lock_8_1 (cites Example from X9.143:2021, 8.1 Key Block Example; Same from X9.14"
                  "3:2022, 8.1 Key Block Example; Same as ISO 20038:2017, Sample B1; Same as ISO 20"
                  "038:2023, 8.1 AES Key Block Example)",
        .key_block =
            "D0144P0AE00E00002C77FA3F4A553BED6E88AE5C172A4166E3D4ACA8E2AC71C158A476FAC12C13C3"
            "829DE55D3AB54C48F4C4FEF7AC75E90FC47F1B77E7B19A73ED46E64410082557",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1A87BBFA2CFE78D383E5F4C6AA83473C1C2965473CE206BB855B01533782",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'A',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 48,
        .n_opt = 0,
    },
    {
        .id = "tr31-warthog-test_x9_143_2021_aes_keyblock_8_2",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_x9_143_2021_aes_keyb"
                  "lock_8_2 (cites Second example from ANSI X9.143:2021, 8.2 AES Key Block with Opt"
                  "ional Blocks; Same as ISO 20038:2023 8.2 Key Block with Optional Blocks)",
        .key_block =
            "D0192C0AVA1N0300KS08VM9ATS1A2018-06-18T20:42:39.22PB0E00000000005FDAFA00A1E84F59"
            "9C2EB51A1F7A767D5E42314F0E84A3FC1A7B84C1DE81114659E6306AD544208F68F15602BD3E12DA"
            "0C7F9FC551F1C8E6385FAFC1F7B499F5",
        .key_hex = "8C326037F8910BBFDBC267E5101DFBF9480433028D5E67B34673440F8ACEC972",
        .pad_hex = "1A87BBFA2CFE78D383E5F4C6AA83",
        .version = 'D',
        .usage = "C0",
        .algorithm = 'A',
        .mode = 'V',
        .key_version = "A1",
        .exportability = 'N',
        .header_len = 64,
        .payload_len = 48,
        .n_opt = 3,
        .opts =
            {
                {"KS", "VM9A"},
                {"TS", "2018-06-18T20:42:39.22"},
                {"PB", "0000000000"},
            },
    },
    {
        .id = "tr31-warthog-test_x9_143_2021_example_1a",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_x9_143_2021_example_"
                  "1a (cites TDES key block examples from X9.143; Third example from ANSI X9.143:20"
                  "21 8.3.2.1 Example 1a: Using Key Variant Binding Method; Exactly the same as ANS"
                  "I X9.143:2022 8.3.2.1 Example 1a: Using Key Variant Binding Method)",
        .key_block =
            "A0088P0TE00E00007DD4DD9566DC0E2F956DCAC0FDE915318973835AEC2D731C2AD2E7B6151EB4CA"
            "6E3552DB",
        .key_hex = "F039121BEC83D26B169BDCD5B22AAF8F",
        .pad_hex = "249F30A2B39A7D6B720DF563BB07",
        .version = 'A',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-warthog-test_x9_143_2022_example_1b",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_x9_143_2022_example_"
                  "1b (cites ANSI X9.143:2022 8.3.2.2 Example 1b: Using Key Derivation Binding Meth"
                  "od)",
        .key_block =
            "B0096P0TE00E0000D7ED9E189BC6F715125B265B149DF8FE218A396785608923D6197378386A3759"
            "308FC49A2AA891BA",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "7CB920D261E9F3AA1C2965473CE2",
        .version = 'B',
        .usage = "P0",
        .algorithm = 'T',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-warthog-test_x9_143_2022_example_2a",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_x9_143_2022_example_"
                  "2a (cites ANSI X9.143:2022 8.4.1 Example 2a: Using Key Variant Binding Method; M"
                  "istake in length field.... version field ('A' vs 'C') and key usage 0x42 vs 0x4b"
                  " ?)",
        .key_block =
            "C0112B0TX12S0100KS1800604B120F929280000042B758A2400AB598AE37782823DAF0BA4BDB0DAF"
            "F34915345CA169AE1F976A429EB139E5",
        .key_hex = "EDB380DD340BC2620247D445F5B8D678",
        .pad_hex = "7CB920D261E9F3AA8546A8ED98D1",
        .version = 'C',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "12",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 32,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
    },
    {
        .id = "tr31-warthog-test_tr_31_example_2a",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_tr_31_example_2a (ci"
                  "tes ASC TR-31:2018 A.7.3.1 Example 2a: Using Key Variant Binding Method)",
        .key_block =
            "C0096B0TX12S0100KS1800604B120F9292800000BFB9B689CB567E66FC3FEE5AD5F52161FC6545B9"
            "D60989015D02155C",
        .key_hex = "EDB380DD340BC2620247D445F5B8D678",
        .pad_hex = "8546A8ED98D1",
        .version = 'C',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "12",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 24,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
    },
    {
        .id = "tr31-warthog-test_tr_31_example_2b",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_tr_31_example_2b (ci"
                  "tes ASC TR-31:2018 A.7.3.2 Example 2b: Using Key Derivation Binding Method)",
        .key_block =
            "B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C473"
            "8A52190E248719E24B433627",
        .key_hex = "E8BC63E5479455E26577F715D587FE68",
        .pad_hex = "30111D18CC4C",
        .version = 'B',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "12",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 24,
        .n_opt = 1,
        .opts =
            {
                {"KS", "00604B120F9292800000"},
            },
    },
    {
        .id = "tr31-warthog-test_tr_31_example_3",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_tr_31_example_3 (cit"
                  "es ASC TR-31:2018 Example 3: AES Key Block without Optional Blocks; Example from"
                  " X9.143:2021, 8.1 Key Block Example)",
        .key_block =
            "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A2"
            "7E8E31DA05F7425509593D03A457DC34",
        .key_hex = "3F419E1CB7079442AA37474C2EFBF8B8",
        .pad_hex = "1C2965473CE206BB855B01533782",
        .version = 'D',
        .usage = "P0",
        .algorithm = 'A',
        .mode = 'E',
        .key_version = "00",
        .exportability = 'E',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-warthog-test_iso_20038_b2",
        .source = "warthog33/keyblock@e6930673bc73 tests/fromstandards.rs test_iso_20038_b2",
        .key_block =
            "E0084B0TV16N0000B2AE5E26BBA7F246E84D5EA24167E208A6B66EF2E27E55A52DB52F0AEACB94C5"
            "7547",
        .key_hex = "777261707065642033444553206B6579",
        .pad_hex = NULL,
        .version = 'E',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'V',
        .key_version = "16",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 18,
        .n_opt = 0,
    },
    {
        .id = "tr31-decode-test1",
        .source = "openemv/tr31@d230c2846686 test/tr31_decode_test.c",
        .key_block =
            "B0104B1TX00S0100KS18820220A0200001E00000B51725B5DD1F18D7A28B3EBD15BA8DE978DC20E5"
            "FA695FEAA249855AA226C65F",
        .key_hex = NULL,
        .pad_hex = NULL,
        .version = 'B',
        .usage = "B1",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "00",
        .exportability = 'S',
        .header_len = 40,
        .payload_len = 24,
        .n_opt = 1,
        .opts =
            {
                {"KS", "820220A0200001E00000"},
            },
        .out_ks = "820220A0200001E00000",
    },
    {
        .id = "tr31-decode-test2",
        .source = "openemv/tr31@d230c2846686 test/tr31_decode_test.c",
        .key_block =
            "D0112B0TN00N000037DB9B046B7B0048785690759580ABC3B9842AB4BB7717B49E92528E575785D8"
            "123559376A2553B27BE94F054F4E971C",
        .key_hex = NULL,
        .pad_hex = NULL,
        .version = 'D',
        .usage = "B0",
        .algorithm = 'T',
        .mode = 'N',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 32,
        .n_opt = 0,
    },
    {
        .id = "tr31-decode-test3",
        .source = "openemv/tr31@d230c2846686 test/tr31_decode_test.c",
        .key_block =
            "D0144D0AN00N0000127862F945C2DED04530FAF7CDBC8B0BA10C7AA79BD5E0C2C5D6AC173BF588E4"
            "B19ACF1357178D50EA0AB193228E13958304FC6149632DFDCADF3A5B3D57E814",
        .key_hex = NULL,
        .pad_hex = NULL,
        .version = 'D',
        .usage = "D0",
        .algorithm = 'A',
        .mode = 'N',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 16,
        .payload_len = 48,
        .n_opt = 0,
    },
    {
        .id = "tr31-decode-test4",
        .source = "openemv/tr31@d230c2846686 test/tr31_decode_test.c",
        .key_block =
            "B0128B1TX00N0300KS18FFFF00A0200001E00000KC0C000169E3KP0C00ECAD626F9F1A826814AA06"
            "6D86C8C18BD0E14033E1EBEC75BEDF586E6E325F3AA8C0E5",
        .key_hex = NULL,
        .pad_hex = NULL,
        .version = 'B',
        .usage = "B1",
        .algorithm = 'T',
        .mode = 'X',
        .key_version = "00",
        .exportability = 'N',
        .header_len = 64,
        .payload_len = 24,
        .n_opt = 3,
        .opts =
            {
                {"KS", "FFFF00A0200001E00000"},
                {"KC", "000169E3"},
                {"KP", "00ECAD62"},
            },
        .out_ks = "FFFF00A0200001E00000",
        .out_kc_kcv = "0169E3",
        .out_kp_kcv = "ECAD62",
    },
};

#endif /* TR31_FORMAT_VECTORS_H */
