/* people.c — the synthetic basic items of residents.csv (DESIGN §5): a
 * name, a birth date, a sex and an address for each invented resident,
 * written as the 住民基本台帳 writes them (surname and given name apart by
 * an ideographic space; addresses with fullwidth digits and 丁目・番・号),
 * so that the business systems' spellings (halfwidth, no spaces, 1-2-3)
 * meet the normalisation of lib/basic_info.h. Every 50th resident has no
 * sex held (the column empty), every 40th a foreign resident's name in
 * capitals, every 7th address a building. Nothing here is a real person. */
#include <stdio.h>
#include <string.h>

#include "tools/net/net_internal.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const surnames[] = {
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田", "佐々木",
    "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森", "池田", "橋本", "阿部", "石川",
    "山下", "中島", "石井", "小川", "前田", "岡田", "長谷川", "藤田", "後藤", "近藤", "村上", "遠藤", "青木",
    "坂本", "福田", "太田", "西村", "藤井", "金子", "岡本", "藤原", "中野", "三浦", "原田", "中川", "松田",
    "竹内", "小野", "田村", "中山", "和田", "石田", "森田", "上田",
};
static const char *const given_male[] = {
    "太郎", "一郎", "健一", "誠", "浩二", "拓也", "直樹", "和也", "健太", "翔太", "大輔", "蓮", "悠真",
    "湊", "陽翔", "樹", "隆", "博", "清", "茂", "大翔", "悠人", "颯太", "達也", "慎吾",
};
static const char *const given_female[] = {
    "花子", "陽子", "美咲", "愛", "結衣", "さくら", "陽菜", "葵", "凛", "真由美", "恵子", "裕子", "直美",
    "由美子", "明美", "芽依", "結菜", "美穂", "智子", "京子", "紬", "杏", "千尋", "彩", "舞",
};
static const char *const foreign_names[] = {
    "SMITH JOHN", "GARCIA MARIA", "NGUYEN VAN AN", "KIM MINJUN", "WANG FANG", "SILVA ANA", "LEE SEOYEON",
    "SANTOS JOSE", "BROWN EMILY", "TRAN THI HOA",
};
static const char *const towns[] = {
    "神奈川県横浜市中区山下町", "神奈川県横浜市中区本町", "神奈川県横浜市西区みなとみらい", "神奈川県川崎市川崎区駅前本町",
    "東京都千代田区霞が関", "東京都千代田区永田町", "東京都新宿区西新宿", "東京都世田谷区太子堂",
    "大阪府大阪市北区梅田", "大阪府大阪市中央区本町", "北海道札幌市中央区北一条西", "宮城県仙台市青葉区一番町",
    "愛知県名古屋市中区栄", "京都府京都市左京区吉田本町", "兵庫県神戸市中央区加納町", "福岡県福岡市博多区博多駅前",
    "広島県広島市中区基町", "沖縄県那覇市泉崎", "新潟県新潟市中央区学校町通", "静岡県静岡市葵区追手町",
};
static const char *const buildings[] = {"コーポ", "ハイツ", "メゾン", "レジデンス", "グランドパレス"};

/* v in fullwidth digits (no leading zeros) at out, NUL-terminated; bytes
 * written before the NUL. */
static size_t fullwidth_number(unsigned v, char *out)
{
    char digits[12];
    int n = snprintf(digits, sizeof digits, "%u", v);
    size_t w = 0;
    for (int i = 0; i < n; i++) { /* ０ is U+FF10: EF BC 90 */
        out[w++] = (char)0xEF;
        out[w++] = (char)0xBC;
        out[w++] = (char)(0x90 + (digits[i] - '0'));
    }
    out[w] = '\0';
    return w;
}

static int days_in(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : days[m - 1];
}

size_t net_resident_items(long i, const uint64_t r[4], char *out, size_t cap)
{
    const char *sex = i % 50 == 49 ? "" : (r[0] & 1) ? "1" : "2";
    int male = sex[0] ? sex[0] == '1' : (int)((r[0] >> 1) & 1);
    char name[128], address[256];
    if (i % 40 == 39)
        snprintf(name, sizeof name, "%s", foreign_names[(r[0] >> 2) % N(foreign_names)]);
    else
        snprintf(name, sizeof name, "%s\u3000%s", surnames[(r[0] >> 8) % N(surnames)],
                 male ? given_male[(r[0] >> 24) % N(given_male)] : given_female[(r[0] >> 24) % N(given_female)]);
    int y = 1930 + (int)(r[1] % 95), m = 1 + (int)((r[1] >> 16) % 12), d = 1 + (int)((r[1] >> 32) % (uint64_t)days_in(y, m));
    size_t w = (size_t)snprintf(address, sizeof address, "%s", towns[r[2] % N(towns)]);
    w += fullwidth_number(1 + (unsigned)((r[2] >> 16) % 9), address + w);
    w += (size_t)snprintf(address + w, sizeof address - w, "丁目");
    w += fullwidth_number(1 + (unsigned)((r[2] >> 24) % 30), address + w);
    w += (size_t)snprintf(address + w, sizeof address - w, "番");
    w += fullwidth_number(1 + (unsigned)((r[2] >> 32) % 20), address + w);
    w += (size_t)snprintf(address + w, sizeof address - w, "号");
    if (i % 7 == 6) {
        w += (size_t)snprintf(address + w, sizeof address - w, "\u3000%s%s", surnames[(r[3] >> 8) % N(surnames)],
                              buildings[r[3] % N(buildings)]);
        w += fullwidth_number(101 + (unsigned)((r[3] >> 16) % 9) * 100 + (unsigned)((r[3] >> 24) % 9), address + w);
    }
    int n = snprintf(out, cap, ",%s,%04d-%02d-%02d,%s,%s", name, y, m, d, sex, address);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
