# The bucket policy: TLS only, read access for the one CloudFront
# distribution (origin access control) on the registry's two prefixes, and
# optionally a Deny that makes unconditional writes impossible.

locals {
  bucket_arn = aws_s3_bucket.this.arn

  # The CloudFront distribution, and nothing else, may read the registry.
  from_distribution = {
    StringEquals = { "AWS:SourceArn" = var.cloudfront_distribution_arn }
  }

  # bucket_policy holds the statements by Sid; each optional group is an
  # object that is empty when switched off.
  bucket_policy = merge(
    {
      DenyInsecureTransport = {
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }
    },
    {
      for sid, s in {
        CloudFrontReadsRegistry = {
          Effect    = "Allow"
          Principal = { Service = "cloudfront.amazonaws.com" }
          Action    = "s3:GetObject"
          Resource  = ["${local.bucket_arn}/${local.prefix}images/*", "${local.bucket_arn}/${local.prefix}streams/v1/*"]
          Condition = local.from_distribution
        }
      } : sid => s if var.cloudfront_distribution_arn != null
    },
    {
      for sid, s in {
        CloudFrontSeesMissingKeys = {
          Effect    = "Allow"
          Principal = { Service = "cloudfront.amazonaws.com" }
          Action    = "s3:ListBucket"
          Resource  = local.bucket_arn
          Condition = local.from_distribution
        }
      } : sid => s if var.cloudfront_distribution_arn != null && var.cloudfront_list_bucket
    },
    {
      # CreateMultipartUpload and UploadPart carry no condition header:
      # s3:ObjectCreationOperation limits the Deny to PutObject,
      # CompleteMultipartUpload and CopyObject.
      for sid, s in {
        DenyImageWritesWithoutIfNoneMatch = {
          Effect    = "Deny"
          Principal = "*"
          Action    = "s3:PutObject"
          Resource  = "${local.bucket_arn}/${local.prefix}images/*"
          Condition = {
            Null = { "s3:if-none-match" = "true" }
            Bool = { "s3:ObjectCreationOperation" = "true" }
          }
        }
        DenyCatalogWritesWithoutCondition = {
          Effect    = "Deny"
          Principal = "*"
          Action    = "s3:PutObject"
          Resource  = "${local.bucket_arn}/${local.prefix}streams/v1/*"
          Condition = {
            Null = { "s3:if-match" = "true", "s3:if-none-match" = "true" }
            Bool = { "s3:ObjectCreationOperation" = "true" }
          }
        }
      } : sid => s if var.enforce_conditional_writes
    },
  )
}

resource "aws_s3_bucket_policy" "this" {
  count  = local.aws
  bucket = aws_s3_bucket.this.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [for sid, s in local.bucket_policy : merge({ Sid = sid }, s)]
  })

  # One bucket-configuration change at a time (S3 answers 409
  # OperationAborted to concurrent ones).
  depends_on = [aws_s3_bucket_public_access_block.this]
}
