# Least-privilege policies for the two kinds of registry writers.
#
# publisher (publish, publish remove, list, verify): reads and writes
# images/* and streams/v1/*, and registry-probe/* (publish writes, then
# deletes, one probe object there when it creates a registry, to check that
# the store honours conditional writes). It can never delete an image file
# or the catalog.
#
# prune (publish prune): reads and rewrites the catalog and deletes image
# files; it uploads nothing.

locals {
  prefix = var.registry_prefix == "" ? "" : "${var.registry_prefix}/"

  # Statements both roles get, when their resource exists.
  common_statements = merge(
    {
      for sid, s in {
        InvalidateCatalog = {
          Effect   = "Allow"
          Action   = "cloudfront:CreateInvalidation"
          Resource = var.distribution_arn
        }
      } : sid => s if var.distribution_arn != null
    },
    {
      for sid, s in {
        UseBucketKey = {
          Effect   = "Allow"
          Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
          Resource = var.kms_key_arn
        }
      } : sid => s if var.kms_key_arn != null
    },
  )

  # publisher_policy holds the publisher's statements by Sid.
  publisher_policy = merge(
    {
      # Listing (verify) and telling a missing key (404) from a forbidden
      # one (403), on the registry prefixes only.
      ListRegistryKeys = {
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = var.bucket_arn
        Condition = { StringLike = { "s3:prefix" = ["${local.prefix}images/*", "${local.prefix}streams/v1/*", "${local.prefix}registry-probe/*"] } }
      }
      ReadWriteRegistry = {
        Effect = "Allow"
        Action = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        Resource = [
          "${var.bucket_arn}/${local.prefix}images/*",
          "${var.bucket_arn}/${local.prefix}streams/v1/*",
          "${var.bucket_arn}/${local.prefix}registry-probe/*",
        ]
      }
      DeleteConditionalWriteProbe = {
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = "${var.bucket_arn}/${local.prefix}registry-probe/*"
      }
    },
    local.common_statements,
  )

  # prune_policy holds the pruner's statements by Sid.
  prune_policy = merge(
    {
      ListRegistryKeys = {
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = var.bucket_arn
        Condition = { StringLike = { "s3:prefix" = ["${local.prefix}images/*", "${local.prefix}streams/v1/*"] } }
      }
      ReadWriteCatalog = {
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = "${var.bucket_arn}/${local.prefix}streams/v1/*"
      }
      DeleteImageFiles = {
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = "${var.bucket_arn}/${local.prefix}images/*"
      }
    },
    local.common_statements,
  )
}

resource "aws_iam_policy" "publisher" {
  name        = "${var.name}-publisher"
  description = "Publish into the ${var.name} registry; no deletes but its own probe object"
  tags        = var.tags
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [for sid, s in local.publisher_policy : merge({ Sid = sid }, s)]
  })
}

resource "aws_iam_policy" "prune" {
  name        = "${var.name}-prune"
  description = "Prune the ${var.name} registry: rewrite the catalog, delete unreferenced image files"
  tags        = var.tags
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [for sid, s in local.prune_policy : merge({ Sid = sid }, s)]
  })
}
